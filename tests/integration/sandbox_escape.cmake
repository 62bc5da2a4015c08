# Black-box tests of the children's sandbox (test_sandbox_escape.py):
# one filter loaded once by the parent, the children's /proc status, gdb
# making a live child attempt each forbidden system call, and the read-only
# control page. They need strace and gdb; none is meaningful under Valgrind
# (strace and gdb trace the real echod, not memcheck's).
if(ECHOD_SANDBOX)
  echod_integ(test_sandbox_escape.py filter_loaded_once 60 novalgrind)
  echod_integ(test_sandbox_escape.py child_status 30 novalgrind)
  echod_integ(test_sandbox_escape.py child_forbidden_actions 120 novalgrind)
  echod_integ(test_sandbox_escape.py control_page_readonly 30 novalgrind)
endif()
