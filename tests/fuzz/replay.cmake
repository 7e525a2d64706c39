# Every seed corpus of tests/fuzz replayed through its fuzz target in the ordinary builds (included by
# tests/CMakeLists.txt): each input that once crashed a reader stays a regression test without clang.
set(LATHE_FUZZ_REPLAY_SRC ${CMAKE_SOURCE_DIR}/tests/fuzz)
foreach(name lang ir safetensors idx csv npy image text)
  add_executable(fuzz_replay_${name} ${LATHE_FUZZ_REPLAY_SRC}/fuzz_${name}.c ${LATHE_FUZZ_REPLAY_SRC}/replay.c)
  target_include_directories(fuzz_replay_${name} PRIVATE ${CMAKE_SOURCE_DIR} ${CBLAS_INCLUDE})
  add_test(NAME fuzz_replay_${name} COMMAND fuzz_replay_${name} ${LATHE_FUZZ_REPLAY_SRC}/corpus/${name})
endforeach()
target_link_libraries(fuzz_replay_lang PRIVATE lathe_frontend lathe_passes lathe_ir)
target_link_libraries(fuzz_replay_ir PRIVATE lathe_passes lathe_ir)
foreach(name safetensors idx csv npy image text)
  target_link_libraries(fuzz_replay_${name} PRIVATE lathe_rt)
endforeach()

# The same targets with each allocation failed in turn (failalloc.c): every N along a run over a few inputs
# of each corpus, checking for crashes and for blocks left allocated. --wrap reaches the allocations of the
# target and of Lathe's static libraries.
set(LATHE_FAILALLOC_WRAP "LINKER:--wrap=malloc,--wrap=calloc,--wrap=realloc,--wrap=free,--wrap=strdup,--wrap=strndup,--wrap=posix_memalign")
foreach(name lang ir safetensors idx csv npy image text)
  add_executable(fuzz_failalloc_${name} ${LATHE_FUZZ_REPLAY_SRC}/fuzz_${name}.c ${LATHE_FUZZ_REPLAY_SRC}/failalloc.c)
  target_include_directories(fuzz_failalloc_${name} PRIVATE ${CMAKE_SOURCE_DIR} ${CBLAS_INCLUDE})
  target_link_options(fuzz_failalloc_${name} PRIVATE ${LATHE_FAILALLOC_WRAP})
  target_link_libraries(fuzz_failalloc_${name} PRIVATE $<TARGET_PROPERTY:fuzz_replay_${name},LINK_LIBRARIES>)
endforeach()
# The data targets take their whole corpus (a few seconds); the compiler's targets take their named inputs
# (the zoo's models, the edge cases, the IR golden tests), as every input takes a compile per allocation, each
# in a process of its own (--fork), since the compiler exits on out of memory.
file(GLOB LATHE_FAILALLOC_LANG ${LATHE_FUZZ_REPLAY_SRC}/corpus/lang/*.lathe)
# the four largest zoo models take 17 of the 42 s this test takes in the ASan build, for paths the others
# already take: they are left to a run by hand over the whole corpus (docs/reliability.md)
list(FILTER LATHE_FAILALLOC_LANG EXCLUDE REGEX "/(resnet20|vgg11_bn|vit_tiny|char_gpt)\\.lathe$")
file(GLOB LATHE_FAILALLOC_IR ${LATHE_FUZZ_REPLAY_SRC}/corpus/ir/*.ir)
add_test(NAME fuzz_failalloc_lang COMMAND fuzz_failalloc_lang --fork ${LATHE_FAILALLOC_LANG})
add_test(NAME fuzz_failalloc_ir COMMAND fuzz_failalloc_ir --fork ${LATHE_FAILALLOC_IR})
foreach(name safetensors idx csv npy image text)
  add_test(NAME fuzz_failalloc_${name} COMMAND fuzz_failalloc_${name} ${LATHE_FUZZ_REPLAY_SRC}/corpus/${name})
endforeach()
# failalloc.c finds a leak: a target that leaks when its second allocation fails must be reported.
add_executable(fuzz_failalloc_plant ${LATHE_FUZZ_REPLAY_SRC}/failalloc_plant.c ${LATHE_FUZZ_REPLAY_SRC}/failalloc.c)
target_link_options(fuzz_failalloc_plant PRIVATE ${LATHE_FAILALLOC_WRAP})
add_test(NAME fuzz_failalloc_finds_a_planted_leak COMMAND fuzz_failalloc_plant ${LATHE_FUZZ_REPLAY_SRC}/failalloc_plant.c)
set_tests_properties(fuzz_failalloc_finds_a_planted_leak PROPERTIES
  PASS_REGULAR_EXPRESSION "failalloc_plant.c: with allocation 2 failed, 1 block the run allocated is still allocated after it: 1 ")
