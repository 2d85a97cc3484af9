file(REMOVE_RECURSE
  "../../bin/mailbox_test"
  "../../bin/mailbox_test.pdb"
  "CMakeFiles/mailbox_test.dir/mailbox_test.cpp.o"
  "CMakeFiles/mailbox_test.dir/mailbox_test.cpp.o.d"
  "mailbox_test_tests-b12d07c.cmake"
)

# Per-language clean rules from dependency scanning.
foreach(lang CXX)
  include(CMakeFiles/mailbox_test.dir/cmake_clean_${lang}.cmake OPTIONAL)
endforeach()
