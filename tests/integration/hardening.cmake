# Hardening findings F1-F7 (test_hardening.py; included from CMakeLists.txt,
# which defines echod_integ). Budgets are seconds of the case's own alarm
# (x10 under Valgrind). novalgrind: timing, slow readers, a stalled pipe,
# kill -9 or resource limits (Valgrind's own threads and address space
# count against RLIMIT_NPROC and RLIMIT_AS) make Valgrind meaningless.

# F1: lingering close while a slow client still takes echoes (SIGTERM:
# ~4 MB owed at 100 KB/s drains in ~45 s; frame error: ~15 s)
echod_integ(test_hardening.py linger_sigterm_slow_reader 150 novalgrind)
echod_integ(test_hardening.py linger_frame_too_large_slow_reader 120 novalgrind)
# F1: bytes dropped while lingering are discarded=, not in=
echod_integ(test_hardening.py discarded_not_in 30)
# F2: a stalled stderr pipe blocks neither serving nor shutdown
echod_integ(test_hardening.py log_stalled_pipe 120 novalgrind)
# F3: no signal but SIGKILL ends the parent; children die with it
echod_integ(test_hardening.py signals_survived 30)
echod_integ(test_hardening.py parent_kill9_children_die 30 novalgrind)
# F4: TCP urgent data echoed inline in raw mode
echod_integ(test_hardening.py urgent_inline 30)
# F5: connections accepted while fork() fails are held, never reset
echod_integ(test_hardening.py fork_fail_held 40 novalgrind)
echod_integ(test_hardening.py fork_fail_never_recovers 40 novalgrind)
# F6: a child out of memory closes cleanly, counted. Needs a small
# RLIMIT_AS, under which an ASan build (terabytes of shadow mappings)
# cannot even start.
if(NOT ECHOD_ASAN)
  echod_integ(test_hardening.py child_oom 30 novalgrind)
endif()
# F7: the suppressed count of the last burst of fork errors is logged
echod_integ(test_hardening.py ratelimit_flush 40 novalgrind)
