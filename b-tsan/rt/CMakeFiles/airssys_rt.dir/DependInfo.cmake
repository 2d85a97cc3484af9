
# Consider dependencies only in project.
set(CMAKE_DEPENDS_IN_PROJECT_ONLY OFF)

# The set of languages for which implicit dependencies are needed:
set(CMAKE_DEPENDS_LANGUAGES
  )

# The set of dependency files which are needed:
set(CMAKE_DEPENDS_DEPENDENCY_FILES
  "/work/main/rt/src/asks.cpp" "rt/CMakeFiles/airssys_rt.dir/src/asks.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/asks.cpp.o.d"
  "/work/main/rt/src/broker.cpp" "rt/CMakeFiles/airssys_rt.dir/src/broker.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/broker.cpp.o.d"
  "/work/main/rt/src/lifecycle.cpp" "rt/CMakeFiles/airssys_rt.dir/src/lifecycle.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/lifecycle.cpp.o.d"
  "/work/main/rt/src/messages.cpp" "rt/CMakeFiles/airssys_rt.dir/src/messages.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/messages.cpp.o.d"
  "/work/main/rt/src/monitoring.cpp" "rt/CMakeFiles/airssys_rt.dir/src/monitoring.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/monitoring.cpp.o.d"
  "/work/main/rt/src/name_table.cpp" "rt/CMakeFiles/airssys_rt.dir/src/name_table.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/name_table.cpp.o.d"
  "/work/main/rt/src/osl_supervisor.cpp" "rt/CMakeFiles/airssys_rt.dir/src/osl_supervisor.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/osl_supervisor.cpp.o.d"
  "/work/main/rt/src/pool.cpp" "rt/CMakeFiles/airssys_rt.dir/src/pool.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/pool.cpp.o.d"
  "/work/main/rt/src/process_actor.cpp" "rt/CMakeFiles/airssys_rt.dir/src/process_actor.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/process_actor.cpp.o.d"
  "/work/main/rt/src/process_actor_output.cpp" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_output.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_output.cpp.o.d"
  "/work/main/rt/src/process_actor_ref.cpp" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_ref.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_ref.cpp.o.d"
  "/work/main/rt/src/process_actor_requests.cpp" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_requests.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_requests.cpp.o.d"
  "/work/main/rt/src/process_actor_spec.cpp" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_spec.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/process_actor_spec.cpp.o.d"
  "/work/main/rt/src/process_pool.cpp" "rt/CMakeFiles/airssys_rt.dir/src/process_pool.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/process_pool.cpp.o.d"
  "/work/main/rt/src/processes.cpp" "rt/CMakeFiles/airssys_rt.dir/src/processes.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/processes.cpp.o.d"
  "/work/main/rt/src/registry.cpp" "rt/CMakeFiles/airssys_rt.dir/src/registry.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/registry.cpp.o.d"
  "/work/main/rt/src/send.cpp" "rt/CMakeFiles/airssys_rt.dir/src/send.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/send.cpp.o.d"
  "/work/main/rt/src/shutdown.cpp" "rt/CMakeFiles/airssys_rt.dir/src/shutdown.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/shutdown.cpp.o.d"
  "/work/main/rt/src/supervisor.cpp" "rt/CMakeFiles/airssys_rt.dir/src/supervisor.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/supervisor.cpp.o.d"
  "/work/main/rt/src/supervisor_ref.cpp" "rt/CMakeFiles/airssys_rt.dir/src/supervisor_ref.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/supervisor_ref.cpp.o.d"
  "/work/main/rt/src/supervisor_requests.cpp" "rt/CMakeFiles/airssys_rt.dir/src/supervisor_requests.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/supervisor_requests.cpp.o.d"
  "/work/main/rt/src/supervisor_spec.cpp" "rt/CMakeFiles/airssys_rt.dir/src/supervisor_spec.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/supervisor_spec.cpp.o.d"
  "/work/main/rt/src/system.cpp" "rt/CMakeFiles/airssys_rt.dir/src/system.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/system.cpp.o.d"
  "/work/main/rt/src/timers.cpp" "rt/CMakeFiles/airssys_rt.dir/src/timers.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/timers.cpp.o.d"
  "/work/main/rt/src/worker.cpp" "rt/CMakeFiles/airssys_rt.dir/src/worker.cpp.o" "gcc" "rt/CMakeFiles/airssys_rt.dir/src/worker.cpp.o.d"
  )

# Targets to which this target links.
set(CMAKE_TARGET_LINKED_INFO_FILES
  "/work/main/b-tsan/osl/CMakeFiles/airssys_osl.dir/DependInfo.cmake"
  "/work/main/b-tsan/arch/CMakeFiles/airssys_arch.dir/DependInfo.cmake"
  "/work/main/b-tsan/base/CMakeFiles/airssys_base.dir/DependInfo.cmake"
  )

# Fortran module output directory.
set(CMAKE_Fortran_TARGET_MODULE_DIR "")
