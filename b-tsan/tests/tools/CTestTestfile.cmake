# CMake generated Testfile for 
# Source directory: /work/main/tests/tools
# Build directory: /work/main/b-tsan/tests/tools
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/b-tsan/tests/tools/airssys_run_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/tools/procfile_test_include-b12d07c.cmake")
