# CMake generated Testfile for 
# Source directory: /work/main/examples
# Build directory: /work/main/b-tsan/examples
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[examples/supervised_workers]=] "/work/main/b-tsan/bin/supervised_workers")
set_tests_properties([=[examples/supervised_workers]=] PROPERTIES  TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/examples/CMakeLists.txt;9;add_test;/work/main/examples/CMakeLists.txt;0;")
add_test([=[examples/process_pool]=] "/work/main/b-tsan/bin/process_pool")
set_tests_properties([=[examples/process_pool]=] PROPERTIES  TIMEOUT "120" _BACKTRACE_TRIPLES "/work/main/examples/CMakeLists.txt;9;add_test;/work/main/examples/CMakeLists.txt;0;")
