# Turns the file IN into a C source OUT defining `const char fe_stdlib_text[]` (NUL-terminated).
file(READ ${IN} hex HEX)
string(REGEX REPLACE "([0-9a-f][0-9a-f])" "0x\\1," bytes "${hex}")
file(WRITE ${OUT} "/* generated from frontend/stdlib.lathe */\nconst char fe_stdlib_text[] = {${bytes} 0x00};\n")
