# CMake generated Testfile for 
# Source directory: /work/main/tests/rt
# Build directory: /work/main/b-tsan/tests/rt
# 
# This file includes the relevant testing commands required for 
# testing this directory and lists subdirectories to be tested as well.
include("/work/main/b-tsan/tests/rt/smoke_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/mailbox_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/lifecycle_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/error_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/timer_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/ask_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/monitor_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/registry_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/broker_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/shutdown_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/alloc_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/stress_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/failure_paths_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/rt_process_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/process_torture_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/process_actor_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/process_pool_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/supervisor_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/osl_supervisor_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/monitoring_test_include-b12d07c.cmake")
include("/work/main/b-tsan/tests/rt/supervision_process_test_include-b12d07c.cmake")
add_test([=[rt/include/actor_hpp_does_not_include_the_process_layer]=] "/usr/bin/cmake" "-DCXX=/usr/bin/c++" "-DINCLUDE_DIRS=/work/main/rt/include;/work/main/osl/include;/work/main/arch/include;/work/main/base/include" "-DHEADER=airssys/rt/actor.hpp" "-DFORBIDDEN=airssys/osl/" "-DWORK_DIR=/work/main/b-tsan/tests/rt" "-P" "/work/main/tests/rt/include_check.cmake")
set_tests_properties([=[rt/include/actor_hpp_does_not_include_the_process_layer]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/tests/rt/CMakeLists.txt;55;add_test;/work/main/tests/rt/CMakeLists.txt;60;airssys_include_check;/work/main/tests/rt/CMakeLists.txt;0;")
add_test([=[rt/include/actor_hpp_does_not_include_the_platform_layer]=] "/usr/bin/cmake" "-DCXX=/usr/bin/c++" "-DINCLUDE_DIRS=/work/main/rt/include;/work/main/osl/include;/work/main/arch/include;/work/main/base/include" "-DHEADER=airssys/rt/actor.hpp" "-DFORBIDDEN=airssys/arch/" "-DWORK_DIR=/work/main/b-tsan/tests/rt" "-P" "/work/main/tests/rt/include_check.cmake")
set_tests_properties([=[rt/include/actor_hpp_does_not_include_the_platform_layer]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/tests/rt/CMakeLists.txt;55;add_test;/work/main/tests/rt/CMakeLists.txt;61;airssys_include_check;/work/main/tests/rt/CMakeLists.txt;0;")
add_test([=[rt/include/config_hpp_does_not_include_the_process_layer]=] "/usr/bin/cmake" "-DCXX=/usr/bin/c++" "-DINCLUDE_DIRS=/work/main/rt/include;/work/main/osl/include;/work/main/arch/include;/work/main/base/include" "-DHEADER=airssys/rt/config.hpp" "-DFORBIDDEN=airssys/osl/" "-DWORK_DIR=/work/main/b-tsan/tests/rt" "-P" "/work/main/tests/rt/include_check.cmake")
set_tests_properties([=[rt/include/config_hpp_does_not_include_the_process_layer]=] PROPERTIES  _BACKTRACE_TRIPLES "/work/main/tests/rt/CMakeLists.txt;55;add_test;/work/main/tests/rt/CMakeLists.txt;62;airssys_include_check;/work/main/tests/rt/CMakeLists.txt;0;")
add_test([=[rt/include/check_finds_the_process_layer_in_process_hpp]=] "/usr/bin/cmake" "-DCXX=/usr/bin/c++" "-DINCLUDE_DIRS=/work/main/rt/include;/work/main/osl/include;/work/main/arch/include;/work/main/base/include" "-DHEADER=airssys/rt/process.hpp" "-DFORBIDDEN=airssys/osl/" "-DWORK_DIR=/work/main/b-tsan/tests/rt" "-P" "/work/main/tests/rt/include_check.cmake")
set_tests_properties([=[rt/include/check_finds_the_process_layer_in_process_hpp]=] PROPERTIES  PASS_REGULAR_EXPRESSION "matching 'airssys/osl/':[ 
]+[^ 
]*airssys/osl/[a-z_]+[.]hpp" _BACKTRACE_TRIPLES "/work/main/tests/rt/CMakeLists.txt;55;add_test;/work/main/tests/rt/CMakeLists.txt;63;airssys_include_check;/work/main/tests/rt/CMakeLists.txt;0;")
