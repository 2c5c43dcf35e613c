//! Scheduler: runs each check on its interval with a stable jitter. (walking skeleton)
