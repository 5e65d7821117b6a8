/* weir_kinesis_main.c: the weir-kinesis binary; the tool itself is in weir_kinesis.c, shared
 * with `weir kinesis`. */
#include "cli/cli_int.h"

int main(int argc, char **argv) {
  return weir__cli_kinesis_main(argc, argv);
}
