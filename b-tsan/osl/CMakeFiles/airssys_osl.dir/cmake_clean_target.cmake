file(REMOVE_RECURSE
  "../lib/libairssys_osl.a"
)
