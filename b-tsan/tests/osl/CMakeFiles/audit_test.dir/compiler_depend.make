# Empty compiler generated dependencies file for audit_test.
# This may be replaced when dependencies are built.
