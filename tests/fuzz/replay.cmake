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
