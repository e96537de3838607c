#include "peft/io/json_file.h"
