#!/usr/bin/env bash
# Writes the project's own spoken-digit dataset in the layout of the Free Spoken Digit Dataset
# (FSDD): one flat folder of {digit}_{speaker}_{index}.wav, 8 kHz mono 16-bit signed PCM.
# FSDD's split applies: index 0-4 is the test set, the rest is training.
#
# Every clip is synthesized with espeak-ng (a voice = an English accent + a voice variant),
# with its pitch and speed jittered, resampled to 8 kHz, peak-normalized to a random level,
# padded with random silence, and mixed with white or pink noise at a random SNR (sox).
# All random draws come from a Park-Miller generator seeded per clip from (seed, speaker,
# digit, take), so a clip does not depend on --takes, --speakers or the order of the work,
# and two runs with the same seed write byte-identical files. See docs/audio.md.
#
# Usage: scripts/make-spoken-digits.sh OUT_DIR [--takes N] [--seed S] [--speakers N] [--jobs J]
#   --takes N     takes per speaker and digit (default 25: 6 x 10 x 25 = 1500 clips)
#   --seed S      seed of all random draws (default 1)
#   --speakers N  number of speakers, 1..12 (default 6), taken in the order listed below
#   --jobs J      clips synthesized in parallel (default: the number of cores)
set -euo pipefail

usage() {
    cat >&2 <<'EOF'
usage: scripts/make-spoken-digits.sh OUT_DIR [--takes N] [--seed S] [--speakers N] [--jobs J]
  --takes N     takes per speaker and digit (default 25: 6 x 10 x 25 = 1500 clips)
  --seed S      seed of all random draws (default 1)
  --speakers N  number of speakers, 1..12 (default 6)
  --jobs J      clips synthesized in parallel (default: the number of cores)
EOF
    exit 2
}

out_dir=""
takes=25
seed=1
speakers=6
jobs=$(nproc 2>/dev/null || echo 2)
while (($#)); do
    case "$1" in
        --takes) takes=${2:?--takes needs a value}; shift 2 ;;
        --seed) seed=${2:?--seed needs a value}; shift 2 ;;
        --speakers) speakers=${2:?--speakers needs a value}; shift 2 ;;
        --jobs) jobs=${2:?--jobs needs a value}; shift 2 ;;
        -h|--help) usage ;;
        -*) echo "make-spoken-digits: unknown option $1" >&2; usage ;;
        *) [[ -z $out_dir ]] || { echo "make-spoken-digits: more than one OUT_DIR" >&2; usage; }
           out_dir=$1; shift ;;
    esac
done
[[ -n $out_dir ]] || usage
for value in "$takes" "$seed" "$speakers" "$jobs"; do
    [[ $value =~ ^[0-9]+$ ]] || { echo "make-spoken-digits: '$value' is not a non-negative integer" >&2; exit 2; }
done
((takes >= 1)) || { echo "make-spoken-digits: --takes must be at least 1" >&2; exit 2; }
((jobs >= 1)) || { echo "make-spoken-digits: --jobs must be at least 1" >&2; exit 2; }

missing=()
for tool in espeak-ng sox soxi awk xargs; do
    command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "make-spoken-digits: missing ${missing[*]}; on Debian: apt-get install espeak-ng sox" >&2
    exit 1
fi

# Speakers: name (no '_'), espeak-ng voice = accent + variant. Accents are espeak-ng's English
# voices (gmw/*), variants from `espeak-ng --voices=variant`; alternating male and female.
all_speakers=(
    "usm3      en-us+m3"
    "gbf2      en-gb+f2"
    "scm1      en-gb-scotland+m1"
    "cbf3      en-029+f3"
    "rpklatt   en-gb-x-rp+klatt"
    "nycf4     en-us-nyc+f4"
    "lcm7      en-gb-x-gbclan+m7"
    "wmf5      en-gb-x-gbcwmd+f5"
    "usf1      en-us+f1"
    "gbm2      en-gb+m2"
    "scf2      en-gb-scotland+f2"
    "cbklatt3  en-029+klatt3"
)
((speakers >= 1 && speakers <= ${#all_speakers[@]})) ||
    { echo "make-spoken-digits: --speakers must be in 1...${#all_speakers[@]}" >&2; exit 2; }

mkdir -p "$out_dir"
work=$(mktemp -d "${TMPDIR:-/tmp}/spoken-digits.XXXXXX")
trap 'rm -rf "$work"' EXIT

# The noise bank: 60 s of white and of pink noise at 8 kHz (float), the same in every run
# (sox -R seeds its generator with a fixed value). Each clip takes a random excerpt.
bank_seconds=60
sox -R -n -r 8000 -c 1 -e floating-point -b 32 "$work/white.wav" synth "$bank_seconds" whitenoise vol 0.5
sox -R -n -r 8000 -c 1 -e floating-point -b 32 "$work/pink.wav" synth "$bank_seconds" pinknoise vol 0.5
rms_of() { sox "$1" -n stat 2>&1 | awk '/^RMS +amplitude/ { print $3 }'; }
white_rms=$(rms_of "$work/white.wav")
pink_rms=$(rms_of "$work/pink.wav")

# One line of parameters per clip: speaker name, voice, digit, take, then the draws.
# Jitter: espeak pitch 30-70 (-p, 0-99 scale), speed 130-200 words/min (-s); espeak's own
# leading and trailing silence trimmed; peak level -18..-3 dBFS; leading and trailing silence
# 0.05-0.30 s each; SNR 10-30 dB against the utterance's RMS (before padding); white or pink
# noise, an excerpt from anywhere in the bank.
total=$((speakers * 10 * takes))
printf '%s\n' "${all_speakers[@]:0:speakers}" | awk -v seed="$seed" -v takes="$takes" \
    -v bank="$((bank_seconds * 8000))" '
    # Park-Miller "minimal standard" generator (modulus 2^31 - 1), in exact double arithmetic.
    function mulmod(a, b) { return ((int(a / 65536) * b % M) * 65536 + (a % 65536) * b) % M }
    function draw() { state = mulmod(state, 48271); return state / M }
    # A per-clip state: key values folded in through squaring modulo M (non-linear, so that
    # neighbouring clips do not get related sequences).
    function mix(h, c) { h = (h + c * 7919 + 104729) % M; h = mulmod(h, h); h = mulmod(h, 48271); return h % (M - 1) + 1 }
    BEGIN { M = 2147483647 }
    function uniform(lo, hi) { return lo + (hi - lo) * draw() }
    function integer(lo, hi) { return lo + int((hi - lo + 1) * draw()) }   # lo..hi inclusive
    {
        name = $1; voice = $2; s = NR - 1
        for (d = 0; d < 10; d++) for (t = 0; t < takes; t++) {
            state = mix(mix(mix(mix(mix(1, seed % M), int(seed / M)), s), d), t)
            for (k = 0; k < 3; k++) draw()
            pitch = integer(30, 70); speed = integer(130, 200)
            level = uniform(-18, -3); lead = integer(400, 2400); trail = integer(400, 2400)
            snr = uniform(10, 30); noise = (draw() < 0.5) ? "white" : "pink"
            offset = integer(0, bank - 16000 * 4)
            printf "%d %s %s %d %d %d %d %.2f %d %d %.2f %s %d\n", ++n, name, voice, d, t, pitch, speed,
                   level, lead, trail, snr, noise, offset
        }
    }' > "$work/clips.txt"

make_clip() {
    local ordinal=$1 name=$2 voice=$3 digit=$4 take=$5 pitch=$6 speed=$7 level=$8 lead=$9
    local trail=${10} snr=${11} noise=${12} offset=${13}
    local words=(zero one two three four five six seven eight nine)
    local t="$work/$name-$digit-$take"
    local out="$out_dir/${digit}_${name}_${take}.wav"
    mkdir -p "$t"
    espeak-ng -v "$voice" -p "$pitch" -s "$speed" -w "$t/raw.wav" "${words[digit]}"
    sox -R -D "$t/raw.wav" -e floating-point -b 32 "$t/speech.wav" \
        silence 1 0.002 0.1% reverse silence 1 0.002 0.1% reverse rate -v 8000 gain -n "$level"
    local rms samples noise_rms
    rms=$(sox "$t/speech.wav" -n stat 2>&1 | awk '/^RMS +amplitude/ { print $3 }')
    samples=$(soxi -s "$t/speech.wav")
    [[ $noise == white ]] && noise_rms=$white_rms || noise_rms=$pink_rms
    local gain
    gain=$(awk -v r="$rms" -v n="$noise_rms" -v snr="$snr" 'BEGIN { printf "%.8f", r / (10 ^ (snr / 20)) / n }')
    sox -R -D -m -v 1 "|sox -R -D $t/speech.wav -p pad ${lead}s ${trail}s" \
        -v "$gain" "|sox -R -D $work/$noise.wav -p trim ${offset}s $((lead + samples + trail))s" \
        -r 8000 -c 1 -b 16 -e signed-integer "$t/clip.wav"
    mv "$t/clip.wav" "$out"
    rm -rf "$t"
    if ((ordinal % 100 == 0 || ordinal == total)); then
        echo "make-spoken-digits: clip $ordinal/$total done" >&2
    fi
}
export -f make_clip
export work out_dir white_rms pink_rms total

echo "make-spoken-digits: $total clips ($speakers speakers x 10 digits x $takes takes, seed $seed) into $out_dir, $jobs in parallel" >&2
start=$SECONDS
xargs -P "$jobs" -L 1 bash -c 'set -euo pipefail; make_clip "$@"' _ < "$work/clips.txt" ||
    { echo "make-spoken-digits: some clips failed" >&2; exit 1; }
echo "make-spoken-digits: wrote $total clips in $((SECONDS - start)) s" >&2
