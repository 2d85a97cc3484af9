file(REMOVE_RECURSE
  "../../bin/audit_test"
  "../../bin/audit_test.pdb"
  "CMakeFiles/audit_test.dir/audit_test.cpp.o"
  "CMakeFiles/audit_test.dir/audit_test.cpp.o.d"
  "audit_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/audit_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
