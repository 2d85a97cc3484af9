file(REMOVE_RECURSE
  "../../bin/broker_test"
  "../../bin/broker_test.pdb"
  "CMakeFiles/broker_test.dir/broker_test.cpp.o"
  "CMakeFiles/broker_test.dir/broker_test.cpp.o.d"
  "broker_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/broker_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
