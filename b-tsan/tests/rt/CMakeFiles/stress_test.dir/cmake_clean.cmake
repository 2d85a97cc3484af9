file(REMOVE_RECURSE
  "../../bin/stress_test"
  "../../bin/stress_test.pdb"
  "CMakeFiles/stress_test.dir/stress_test.cpp.o"
  "CMakeFiles/stress_test.dir/stress_test.cpp.o.d"
  "stress_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/stress_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
