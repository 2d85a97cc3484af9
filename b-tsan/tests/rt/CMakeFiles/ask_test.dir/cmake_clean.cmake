file(REMOVE_RECURSE
  "../../bin/ask_test"
  "../../bin/ask_test.pdb"
  "CMakeFiles/ask_test.dir/ask_test.cpp.o"
  "CMakeFiles/ask_test.dir/ask_test.cpp.o.d"
  "ask_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/ask_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
