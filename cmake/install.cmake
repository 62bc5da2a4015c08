# Installation (SPEC section 7, "Install"): included at the end of the
# top-level CMakeLists.txt.
#
#   cmake --install build [--prefix P]
#
# puts, under P (GNUInstallDirs):
#   sbin/echod                      bin/echo-client, bin/echo-stress
#   share/man/man8/echod.8          share/man/man1/echo-client.1, echo-stress.1
#   lib/systemd/system/             echod.socket, echod.service,
#                                   echod-inetd.socket, echod-inetd@.service
#
# The units' ExecStart= names the installed echod. It is written when the
# units are installed, not when the build is configured, so that it follows
# --prefix (and never includes DESTDIR, which only stages the files).
# tests/install/ checks all of it in a temporary prefix.
#
# This file is also the install-time script that writes the units: the
# install(CODE) below includes it again with ECHOD_WRITE_UNITS set.

if(ECHOD_WRITE_UNITS)
  # ---- At install time (cmake --install), in script mode ----
  # CMAKE_INSTALL_PREFIX is the prefix of this install (--prefix or the
  # configured one).
  if(IS_ABSOLUTE "${ECHOD_SBINDIR}")
    set(ECHOD_SBINDIR_FULL "${ECHOD_SBINDIR}")
  else()
    set(ECHOD_SBINDIR_FULL "${CMAKE_INSTALL_PREFIX}/${ECHOD_SBINDIR}")
  endif()
  if(IS_ABSOLUTE "${ECHOD_UNITDIR}")
    set(_unitdir "${ECHOD_UNITDIR}")
  else()
    set(_unitdir "${CMAKE_INSTALL_PREFIX}/${ECHOD_UNITDIR}")
  endif()
  # configure_file's @VAR@: the templates use @ECHOD_SBINDIR@.
  set(ECHOD_SBINDIR "${ECHOD_SBINDIR_FULL}")
  set(_generated)
  foreach(_unit IN LISTS ECHOD_UNITS)
    configure_file("${ECHOD_UNIT_SOURCE_DIR}/${_unit}.in"
                   "${ECHOD_UNIT_BINARY_DIR}/${_unit}" @ONLY)
    list(APPEND _generated "${ECHOD_UNIT_BINARY_DIR}/${_unit}")
  endforeach()
  # file(INSTALL) stages under DESTDIR and records the install manifest,
  # as install(FILES) does.
  file(INSTALL DESTINATION "${_unitdir}" TYPE FILE
       PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
       FILES ${_generated})
  return()
endif()

# ---- At configure time: the rules ----
include(GNUInstallDirs)

# Where the units go. A path under the prefix follows --prefix; one outside
# it (say /lib/systemd/system for a /usr/local echod) is used as given.
set(_echod_unitdir_default "${CMAKE_INSTALL_PREFIX}/lib/systemd/system")
# Follow a change of CMAKE_INSTALL_PREFIX unless the user chose a path.
if(DEFINED _ECHOD_SYSTEMD_UNITDIR_DEFAULT
   AND ECHOD_SYSTEMD_UNITDIR STREQUAL _ECHOD_SYSTEMD_UNITDIR_DEFAULT
   AND NOT _ECHOD_SYSTEMD_UNITDIR_DEFAULT STREQUAL _echod_unitdir_default)
  set_property(CACHE ECHOD_SYSTEMD_UNITDIR PROPERTY VALUE
               "${_echod_unitdir_default}")
endif()
set(_ECHOD_SYSTEMD_UNITDIR_DEFAULT "${_echod_unitdir_default}"
    CACHE INTERNAL "ECHOD_SYSTEMD_UNITDIR's default for this prefix")
set(ECHOD_SYSTEMD_UNITDIR "${_echod_unitdir_default}" CACHE PATH
    "Where cmake --install puts the systemd units (a path under CMAKE_INSTALL_PREFIX follows --prefix)")

string(LENGTH "${CMAKE_INSTALL_PREFIX}/" _echod_plen)
string(SUBSTRING "${ECHOD_SYSTEMD_UNITDIR}/" 0 ${_echod_plen} _echod_head)
if(_echod_head STREQUAL "${CMAKE_INSTALL_PREFIX}/")
  file(RELATIVE_PATH ECHOD_SYSTEMD_UNITDIR_INSTALL "${CMAKE_INSTALL_PREFIX}"
       "${ECHOD_SYSTEMD_UNITDIR}")
else()
  set(ECHOD_SYSTEMD_UNITDIR_INSTALL "${ECHOD_SYSTEMD_UNITDIR}")
endif()

# Where each file goes, for tests/install (read when the test runs).
file(CONFIGURE OUTPUT "${PROJECT_BINARY_DIR}/echod-install-layout.txt"
     CONTENT "sbindir=${CMAKE_INSTALL_SBINDIR}
bindir=${CMAKE_INSTALL_BINDIR}
mandir=${CMAKE_INSTALL_MANDIR}
unitdir=${ECHOD_SYSTEMD_UNITDIR_INSTALL}
")

if(TARGET echod)
  install(TARGETS echod RUNTIME DESTINATION "${CMAKE_INSTALL_SBINDIR}")
  install(FILES "${PROJECT_SOURCE_DIR}/man/echod.8"
          DESTINATION "${CMAKE_INSTALL_MANDIR}/man8")
  set(ECHOD_UNITS echod.socket echod.service echod-inetd.socket
                  echod-inetd@.service)
  install(CODE "
set(ECHOD_WRITE_UNITS ON)
set(ECHOD_SBINDIR [==[${CMAKE_INSTALL_SBINDIR}]==])
set(ECHOD_UNITDIR [==[${ECHOD_SYSTEMD_UNITDIR_INSTALL}]==])
set(ECHOD_UNITS [==[${ECHOD_UNITS}]==])
set(ECHOD_UNIT_SOURCE_DIR [==[${PROJECT_SOURCE_DIR}/systemd]==])
set(ECHOD_UNIT_BINARY_DIR [==[${PROJECT_BINARY_DIR}/systemd]==])
include([==[${CMAKE_CURRENT_LIST_FILE}]==])
set(ECHOD_WRITE_UNITS OFF)
")
endif()
if(TARGET echo-client)
  install(TARGETS echo-client RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  install(FILES "${PROJECT_SOURCE_DIR}/man/echo-client.1"
          DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")
endif()
if(TARGET echo-stress)
  install(TARGETS echo-stress RUNTIME DESTINATION "${CMAKE_INSTALL_BINDIR}")
  install(FILES "${PROJECT_SOURCE_DIR}/man/echo-stress.1"
          DESTINATION "${CMAKE_INSTALL_MANDIR}/man1")
endif()
