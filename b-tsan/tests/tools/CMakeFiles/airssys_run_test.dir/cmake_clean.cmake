file(REMOVE_RECURSE
  "../../bin/airssys_run_test"
  "../../bin/airssys_run_test.pdb"
  "CMakeFiles/airssys_run_test.dir/airssys_run_test.cpp.o"
  "CMakeFiles/airssys_run_test.dir/airssys_run_test.cpp.o.d"
  "airssys_run_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/airssys_run_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
