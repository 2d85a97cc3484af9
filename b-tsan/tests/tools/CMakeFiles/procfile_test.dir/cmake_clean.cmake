file(REMOVE_RECURSE
  "../../bin/procfile_test"
  "../../bin/procfile_test.pdb"
  "CMakeFiles/procfile_test.dir/procfile_test.cpp.o"
  "CMakeFiles/procfile_test.dir/procfile_test.cpp.o.d"
  "procfile_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/procfile_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
