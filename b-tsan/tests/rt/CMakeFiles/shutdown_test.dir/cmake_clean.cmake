file(REMOVE_RECURSE
  "../../bin/shutdown_test"
  "../../bin/shutdown_test.pdb"
  "CMakeFiles/shutdown_test.dir/shutdown_test.cpp.o"
  "CMakeFiles/shutdown_test.dir/shutdown_test.cpp.o.d"
  "shutdown_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/shutdown_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
