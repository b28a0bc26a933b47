#include <opus/opus.h>

/* opus_encoder_ctl and opus_decoder_ctl are variadic, which Swift cannot call: these typed
   wrappers pass one int (or one int pointer) for the requests the Swift code uses. */
static inline int cdc_opus_encoder_ctl_set(OpusEncoder *st, int request, opus_int32 value) {
    return opus_encoder_ctl(st, request, value);
}
static inline int cdc_opus_encoder_ctl_get(OpusEncoder *st, int request, opus_int32 *value) {
    return opus_encoder_ctl(st, request, value);
}
static inline int cdc_opus_decoder_ctl_get(OpusDecoder *st, int request, opus_int32 *value) {
    return opus_decoder_ctl(st, request, value);
}
