/* vfleet's version: the one place it is written. CMakeLists.txt reads it for
 * the project (and so the .debs), the programs print it for --version, the
 * agent sends it in its hello, the master answers it in /v1/health. */
#pragma once

#define VFLEET_VERSION "0.1.0"
