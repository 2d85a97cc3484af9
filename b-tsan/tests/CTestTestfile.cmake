# CMake generated Testfile for 
# Source directory: /work/main/tests
# Build directory: /work/main/b-tsan/tests
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
add_test([=[readme/example_runs]=] "/work/main/b-tsan/bin/readme_example")
set_tests_properties([=[readme/example_runs]=] PROPERTIES  PASS_REGULAR_EXPRESSION "hello #1
hello #2
hello #3
late send: actor #0 \\(generation 1\\) has stopped" TIMEOUT "60" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;32;add_test;/work/main/tests/CMakeLists.txt;0;")
add_test([=[readme/supervision_example_runs]=] "/work/main/b-tsan/bin/readme_supervision_example")
set_tests_properties([=[readme/supervision_example_runs]=] PROPERTIES  PASS_REGULAR_EXPRESSION "flaky started
flaky started
restarts: 1
stopped: ok" TIMEOUT "60" _BACKTRACE_TRIPLES "/work/main/tests/CMakeLists.txt;44;add_test;/work/main/tests/CMakeLists.txt;0;")
subdirs("arch")
subdirs("osl")
subdirs("rt")
subdirs("tools")
