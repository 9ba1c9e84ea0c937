/* version.h: the release version, printed by `subgate version`. */
#ifndef SUBGATE_BASE_VERSION_H
#define SUBGATE_BASE_VERSION_H

#define SUBGATE_VERSION "0.1.0"

#endif /* SUBGATE_BASE_VERSION_H */
