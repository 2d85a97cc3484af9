file(REMOVE_RECURSE
  "../../bin/supervision_process_test"
  "../../bin/supervision_process_test.pdb"
  "CMakeFiles/supervision_process_test.dir/supervision_process_test.cpp.o"
  "CMakeFiles/supervision_process_test.dir/supervision_process_test.cpp.o.d"
  "supervision_process_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/supervision_process_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
