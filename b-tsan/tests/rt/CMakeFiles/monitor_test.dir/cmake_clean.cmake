file(REMOVE_RECURSE
  "../../bin/monitor_test"
  "../../bin/monitor_test.pdb"
  "CMakeFiles/monitor_test.dir/monitor_test.cpp.o"
  "CMakeFiles/monitor_test.dir/monitor_test.cpp.o.d"
  "monitor_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/monitor_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
