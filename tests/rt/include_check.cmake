# Proves what a public header does NOT pull in: preprocesses a translation
# unit that includes only HEADER and fails if any header whose path matches
# FORBIDDEN is among its dependencies (the compiler's -M list, which
# follows every nested include).
#   cmake -DCXX=... -DINCLUDE_DIRS="a;b" -DHEADER=airssys/rt/actor.hpp
#         -DFORBIDDEN=airssys/osl/ -DWORK_DIR=... -P include_check.cmake
foreach(var CXX INCLUDE_DIRS HEADER FORBIDDEN WORK_DIR)
  if(NOT DEFINED ${var})
    message(FATAL_ERROR "include_check.cmake: ${var} is not set")
  endif()
endforeach()
string(MAKE_C_IDENTIFIER "${HEADER}" tu_name)
set(tu ${WORK_DIR}/include_check_${tu_name}.cpp)
file(WRITE ${tu} "#include <${HEADER}>\n")
set(flags -std=c++20 -M)
foreach(dir IN LISTS INCLUDE_DIRS)
  list(APPEND flags -I${dir})
endforeach()
execute_process(COMMAND ${CXX} ${flags} ${tu} RESULT_VARIABLE rc OUTPUT_VARIABLE deps ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "<${HEADER}> does not compile on its own:\n${err}")
endif()
string(REGEX MATCHALL "[^ \\\n]*${FORBIDDEN}[^ \\\n]*" hits "${deps}")
if(hits)
  list(REMOVE_DUPLICATES hits)
  string(REPLACE ";" "\n  " hits "${hits}")
  message(FATAL_ERROR "<${HEADER}> pulls in headers matching '${FORBIDDEN}':\n  ${hits}")
endif()
message(STATUS "<${HEADER}>: nothing matching '${FORBIDDEN}' among its includes")
