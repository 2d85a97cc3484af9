file(REMOVE_RECURSE
  "../../bin/error_test"
  "../../bin/error_test.pdb"
  "CMakeFiles/error_test.dir/error_test.cpp.o"
  "CMakeFiles/error_test.dir/error_test.cpp.o.d"
  "error_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/error_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
