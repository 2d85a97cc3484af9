file(REMOVE_RECURSE
  "../../bin/monitoring_test"
  "../../bin/monitoring_test.pdb"
  "CMakeFiles/monitoring_test.dir/monitoring_test.cpp.o"
  "CMakeFiles/monitoring_test.dir/monitoring_test.cpp.o.d"
  "monitoring_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/monitoring_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
