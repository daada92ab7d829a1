# Install rules and the Debian packages (CPack, DEB generator).
#
# `cmake --install build` lays the programs, units, configs, man pages,
# completions, web UI and template scripts where Debian expects them (the
# default prefix is /usr); `cpack -G DEB` in the build directory (or
# deploy/build-debs) makes three packages from the same rules, one per
# component:
#   vfleet-master  master    vfleet-master, its unit, master.conf, the web UI
#   vfleet-node    node      vfleet-node, its unit, node.conf, template scripts
#   vfleet         cli       the vfleet command, bash and zsh completion
# Library dependencies come from dpkg-shlibdeps; the tools the node runs are
# listed by hand.

include(GNUInstallDirs)

set(VFLEET_SYSCONFDIR "/etc" CACHE PATH "where vfleet/ with the .conf files goes")
set(VFLEET_UNITDIR "/lib/systemd/system" CACHE PATH "systemd system unit directory")
set(VFLEET_STATEDIR "/var/lib/vfleet" CACHE PATH "state directory")
set(VFLEET_DATADIR "${CMAKE_INSTALL_FULL_DATADIR}/vfleet")
set(VFLEET_BINDIR "${CMAKE_INSTALL_FULL_BINDIR}")

install(TARGETS vfleet-master RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT master)
install(TARGETS vfleet-node RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT node)
install(TARGETS vfleet RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR} COMPONENT cli)

# Units and configs name the installed paths.
foreach(_u vfleet-master vfleet-node)
  configure_file(${PROJECT_SOURCE_DIR}/deploy/systemd/${_u}.service.in
                 ${CMAKE_BINARY_DIR}/deploy/${_u}.service @ONLY)
endforeach()
foreach(_c master node)
  configure_file(${PROJECT_SOURCE_DIR}/deploy/etc/${_c}.conf.in
                 ${CMAKE_BINARY_DIR}/deploy/${_c}.conf @ONLY)
endforeach()
install(FILES ${CMAKE_BINARY_DIR}/deploy/vfleet-master.service DESTINATION ${VFLEET_UNITDIR}
        COMPONENT master)
install(FILES ${CMAKE_BINARY_DIR}/deploy/vfleet-node.service DESTINATION ${VFLEET_UNITDIR}
        COMPONENT node)
install(FILES ${CMAKE_BINARY_DIR}/deploy/master.conf DESTINATION ${VFLEET_SYSCONFDIR}/vfleet
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT master)
install(FILES ${CMAKE_BINARY_DIR}/deploy/node.conf DESTINATION ${VFLEET_SYSCONFDIR}/vfleet
        PERMISSIONS OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ COMPONENT node)

# State: each daemon's directory is owner-only; the parent holds only them
# and the templates. The master's is handed to its user by the postinst.
install(DIRECTORY DESTINATION ${VFLEET_STATEDIR} COMPONENT node)
install(DIRECTORY DESTINATION ${VFLEET_STATEDIR} COMPONENT master)
install(DIRECTORY DESTINATION ${VFLEET_STATEDIR}/node
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE COMPONENT node)
# Templates hold setuid programs and file capabilities: owner-only too.
install(DIRECTORY DESTINATION ${VFLEET_STATEDIR}/templates
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE COMPONENT node)
install(DIRECTORY DESTINATION ${VFLEET_STATEDIR}/master
        DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE COMPONENT master)

install(DIRECTORY ${PROJECT_SOURCE_DIR}/master/web/ DESTINATION ${VFLEET_DATADIR}/web
        COMPONENT master)
install(PROGRAMS ${PROJECT_SOURCE_DIR}/deploy/templates/busybox
                 ${PROJECT_SOURCE_DIR}/deploy/templates/debian
        DESTINATION ${VFLEET_DATADIR}/templates COMPONENT node)
install(FILES ${PROJECT_SOURCE_DIR}/deploy/templates/lib.sh
              ${PROJECT_SOURCE_DIR}/deploy/templates/vfleet-init
        DESTINATION ${VFLEET_DATADIR}/templates COMPONENT node)

install(FILES ${PROJECT_SOURCE_DIR}/completions/vfleet.bash
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME vfleet
        COMPONENT cli)
install(FILES ${PROJECT_SOURCE_DIR}/completions/_vfleet
        DESTINATION ${CMAKE_INSTALL_DATADIR}/zsh/vendor-completions COMPONENT cli)

foreach(_c master node)
  install(FILES ${PROJECT_SOURCE_DIR}/docs/config.md
          DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/vfleet-${_c} COMPONENT ${_c})
endforeach()

# Man pages from scdoc sources (man/*.scd), gzipped as Debian ships them.
find_program(SCDOC scdoc)
find_program(GZIP gzip)
set(_pages vfleet.1:cli vfleet-master.8:master vfleet-node.8:node)
set(_man_outputs)
foreach(_p ${_pages})
  string(REPLACE ":" ";" _pc ${_p})
  list(GET _pc 0 _page)
  list(GET _pc 1 _comp)
  string(REGEX REPLACE ".*\\.([0-9])$" "\\1" _sec ${_page})
  set(_out ${CMAKE_BINARY_DIR}/man/${_page}.gz)
  if(SCDOC AND GZIP)
    add_custom_command(OUTPUT ${_out}
      COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/man
      COMMAND ${SCDOC} < ${PROJECT_SOURCE_DIR}/man/${_page}.scd > ${CMAKE_BINARY_DIR}/man/${_page}
      COMMAND ${GZIP} -9nf ${CMAKE_BINARY_DIR}/man/${_page}
      DEPENDS ${PROJECT_SOURCE_DIR}/man/${_page}.scd
      COMMENT "scdoc ${_page}" VERBATIM)
    list(APPEND _man_outputs ${_out})
    install(FILES ${_out} DESTINATION ${CMAKE_INSTALL_MANDIR}/man${_sec} COMPONENT ${_comp})
  endif()
endforeach()
if(_man_outputs)
  add_custom_target(man ALL DEPENDS ${_man_outputs})
else()
  message(WARNING "scdoc or gzip not found: no man pages (deploy/install-deps installs scdoc)")
endif()

# ---- CPack: three .debs ----------------------------------------------------
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME vfleet)
set(CPACK_PACKAGE_VENDOR "vfleet")
set(CPACK_PACKAGE_CONTACT "vfleet maintainers <vfleet@localhost>")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_STRIP_FILES ON)
set(CPACK_WARN_ON_ABSOLUTE_INSTALL_DESTINATION OFF)
set(CPACK_COMPONENTS_ALL master node cli)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_SECTION admin)
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/vfleet/vfleet")
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS OFF)

set(CPACK_DEBIAN_MASTER_PACKAGE_NAME vfleet-master)
set(CPACK_DEBIAN_MASTER_DESCRIPTION "vfleet cluster master
 The master of a vfleet cluster: keeps the desired state of every guest in
 SQLite, places guests on nodes, allocates addresses and serves the REST API
 and the web UI. Runs as the system user vfleet.")
set(CPACK_DEBIAN_MASTER_PACKAGE_RECOMMENDS "vfleet")
set(CPACK_DEBIAN_MASTER_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/deploy/deb/master/postinst;${PROJECT_SOURCE_DIR}/deploy/deb/master/prerm;${PROJECT_SOURCE_DIR}/deploy/deb/master/conffiles")
set(CPACK_DEBIAN_MASTER_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_NODE_PACKAGE_NAME vfleet-node)
set(CPACK_DEBIAN_NODE_DESCRIPTION "vfleet node agent
 The node agent of a vfleet cluster: runs guests (VPSs) as OS-level contexts
 with namespaces, cgroups, veth, tc, nftables and loop-mounted ext4 disks,
 as the master asks. Guests keep running when the agent stops or restarts.")
# libnftables1 is named by hand: the agent dlopens it (node/linux/nftlib.c),
# so dpkg-shlibdeps, which reads only the linked libraries, cannot see it.
set(CPACK_DEBIAN_NODE_PACKAGE_DEPENDS "e2fsprogs, util-linux, mount, libnftables1 (>= 1.0.6)")
set(CPACK_DEBIAN_NODE_PACKAGE_RECOMMENDS "busybox-static, vfleet")
set(CPACK_DEBIAN_NODE_PACKAGE_SUGGESTS "debootstrap")
set(CPACK_DEBIAN_NODE_PACKAGE_CONTROL_EXTRA
    "${PROJECT_SOURCE_DIR}/deploy/deb/node/postinst;${PROJECT_SOURCE_DIR}/deploy/deb/node/prerm;${PROJECT_SOURCE_DIR}/deploy/deb/node/conffiles")
set(CPACK_DEBIAN_NODE_PACKAGE_CONTROL_STRICT_PERMISSION ON)

set(CPACK_DEBIAN_CLI_PACKAGE_NAME vfleet)
set(CPACK_DEBIAN_CLI_DESCRIPTION "vfleet command-line client
 The operator's command line for a vfleet cluster: nodes, guests and address
 pools through the master's REST API. Bash and zsh completion included.")
set(CPACK_DEBIAN_CLI_PACKAGE_SUGGESTS "bash-completion")

include(CPack)
