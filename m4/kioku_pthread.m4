# KIOKU_PTHREAD: make the compiler and linker use POSIX threads (-pthread).
AC_DEFUN([KIOKU_PTHREAD], [
  AC_CACHE_CHECK([whether $CC accepts -pthread], [kioku_cv_pthread], [
    save_CFLAGS=$CFLAGS; CFLAGS="$CFLAGS -pthread"
    AC_LINK_IFELSE([AC_LANG_PROGRAM([[#include <pthread.h>]],
      [[pthread_t t; return pthread_create(&t, 0, 0, 0);]])],
      [kioku_cv_pthread=yes], [kioku_cv_pthread=no])
    CFLAGS=$save_CFLAGS])
  AS_IF([test "x$kioku_cv_pthread" = xyes],
    [CFLAGS="$CFLAGS -pthread"; LDFLAGS="$LDFLAGS -pthread"],
    [AC_SEARCH_LIBS([pthread_create], [pthread], [], [AC_MSG_ERROR([kioku needs POSIX threads])])])
])
