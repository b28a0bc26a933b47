#ifndef CDNNL_SHIM_H
#define CDNNL_SHIM_H
#include <oneapi/dnnl/dnnl.h>
/* OpenMP runtime (Debian's oneDNN is built with GNU OpenMP). */
void omp_set_num_threads(int num_threads);
int omp_get_max_threads(void);
#endif
