# CMake generated Testfile for 
# Source directory: /work/main/tests/osl
# Build directory: /work/main/b-tsan/tests/osl
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/b-tsan/tests/osl/executor_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/osl/teardown_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/osl/policy_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/osl/audit_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/osl/cgroup_containment_test_include-b12d07c.cmake")
