# CMake generated Testfile for 
# Source directory: /work/main/tests/arch
# Build directory: /work/main/b-tsan/tests/arch
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/b-tsan/tests/arch/process_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/arch/spawn_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/arch/cgroup_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/arch/guardian_test_include-b12d07c.cmake")
