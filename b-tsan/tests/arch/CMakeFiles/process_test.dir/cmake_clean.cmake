file(REMOVE_RECURSE
  "../../bin/process_test"
  "../../bin/process_test.pdb"
  "CMakeFiles/process_test.dir/process_test.cpp.o"
  "CMakeFiles/process_test.dir/process_test.cpp.o.d"
  "process_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/process_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
