file(REMOVE_RECURSE
  "../../bin/supervisor_test"
  "../../bin/supervisor_test.pdb"
  "CMakeFiles/supervisor_test.dir/supervisor_test.cpp.o"
  "CMakeFiles/supervisor_test.dir/supervisor_test.cpp.o.d"
  "supervisor_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/supervisor_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
