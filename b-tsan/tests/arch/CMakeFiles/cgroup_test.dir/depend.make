# Empty dependencies file for cgroup_test.
# This may be replaced when dependencies are built.
