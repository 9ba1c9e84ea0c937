/* banned.h: libc calls that have a safer project API; using one is a compile error (git's idea). */
#ifndef SUBGATE_BASE_BANNED_H
#define SUBGATE_BASE_BANNED_H

#define BANNED(func) sorry_##func##_is_banned_use_the_buf_or_str_api

#undef strcpy
#define strcpy(x, y) BANNED(strcpy)
#undef strcat
#define strcat(x, y) BANNED(strcat)
#undef strncpy
#define strncpy(x, y, n) BANNED(strncpy)
#undef sprintf
#define sprintf(...) BANNED(sprintf)
#undef vsprintf
#define vsprintf(...) BANNED(vsprintf)
#undef strtok
#define strtok(x, y) BANNED(strtok)
#undef atoi
#define atoi(x) BANNED(atoi)
#undef atol
#define atol(x) BANNED(atol)
#undef gmtime
#define gmtime(t) BANNED(gmtime)
#undef localtime
#define localtime(t) BANNED(localtime)
#undef gets
#define gets(x) BANNED(gets)

#endif /* SUBGATE_BASE_BANNED_H */
