#include "peft/io/hf_config.h"
