#include "shm/store.hpp"
