# Empty compiler generated dependencies file for mailbox_test.
# This may be replaced when dependencies are built.
