# Empty compiler generated dependencies file for cgroup_containment_test.
# This may be replaced when dependencies are built.
