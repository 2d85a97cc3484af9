file(REMOVE_RECURSE
  "../../bin/timer_test"
  "../../bin/timer_test.pdb"
  "CMakeFiles/timer_test.dir/timer_test.cpp.o"
  "CMakeFiles/timer_test.dir/timer_test.cpp.o.d"
  "timer_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/timer_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
