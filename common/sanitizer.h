/* Which sanitizer this build runs under: gcc says so with __SANITIZE_*__,
 * clang with __has_feature. For code and tests that behave differently
 * under one (an allocator's poisoning, a check a sanitizer's run time
 * cannot pass). */
#pragma once

#if defined(__SANITIZE_ADDRESS__)
#define VF_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VF_ASAN 1
#endif
#endif

#if defined(__SANITIZE_THREAD__)
#define VF_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VF_TSAN 1
#endif
#endif
