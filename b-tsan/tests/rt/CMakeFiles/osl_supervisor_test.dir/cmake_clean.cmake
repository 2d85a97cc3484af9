file(REMOVE_RECURSE
  "../../bin/osl_supervisor_test"
  "../../bin/osl_supervisor_test.pdb"
  "CMakeFiles/osl_supervisor_test.dir/osl_supervisor_test.cpp.o"
  "CMakeFiles/osl_supervisor_test.dir/osl_supervisor_test.cpp.o.d"
  "osl_supervisor_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/osl_supervisor_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
