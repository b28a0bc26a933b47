#!/usr/bin/env python3
"""Merges the rate-accuracy rows behind docs/results-vae-cls/ into one experiment directory.

Usage: scripts/merge-vae-cls-results.py RESULTS_FULL VAE_RUN CDC_AE_RUN OUT RESULTS_CODING
  RESULTS_FULL   docs/results-full (its raw, JPEG and WebP rows are kept)
  VAE_RUN        the output of `cdc experiment rate-accuracy --masks '' --no-ae --no-baselines --no-raw
                 --alpha-sweep '' --vae-masks 4,3,2 --out VAE_RUN`
  CDC_AE_RUN     the output of `cdc experiment rate-accuracy --masks 4,3 --alpha 8 --alpha-sweep ''
                 --no-baselines --no-raw --out CDC_AE_RUN`
  OUT            the merged directory (results.csv, timings.json); then run `cdc experiment report OUT`
  RESULTS_CODING docs/results-coding (its learned-prior CDC rows, rate_weight set, are kept)
Every run has the same settings (10 000 training images, 10/6 epochs); columns are matched by name.

       scripts/merge-vae-cls-results.py --add OUT RUN
  appends the rows of a later run with the same settings (e.g. the context-model rows: `cdc experiment
  rate-accuracy --masks '' --no-ae --no-baselines --no-raw --alpha-sweep '' --vae-masks 4,3,2
  --vae-rate-models context3d --out RUN`) to the merged OUT, skipping rows it already has, and adds
  the run's phase times and rate models to OUT/timings.json.
"""
import csv, json, sys, os
def rows(path):
    with open(path) as f: return list(csv.DictReader(f))
def header(path):
    with open(path) as f: return list(csv.DictReader(f).fieldnames)
def write(path, fields, all_rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in all_rows:
            w.writerow({k: r.get(k, "") or "" for k in fields})
if sys.argv[1] == "--add":
    out, run = sys.argv[2:4]
    have = rows(f"{out}/results.csv")
    key = lambda r: (r["method"], r["mask"], r.get("rate_weight", ""), r["quality"], r["seed"])
    seen = {key(r) for r in have}
    added = [r for r in rows(f"{run}/results.csv") if key(r) not in seen]
    write(f"{out}/results.csv", header(f"{out}/results.csv"), have + added)
    t = json.load(open(f"{out}/timings.json"))
    r = json.load(open(f"{run}/timings.json"))
    for k, v in r.get("phaseSeconds", {}).items():
        t["phaseSeconds"][k] = t["phaseSeconds"].get(k, 0) + v
    models = t["config"].get("vaeRateModels") or ["factorized"]
    for m in r["config"].get("vaeRateModels") or ["factorized"]:
        if m not in models: models.append(m)
    t["config"]["vaeRateModels"] = models
    t["note"] = t.get("note", "") + f"; rows of {os.path.basename(run.rstrip('/'))} added by --add"
    json.dump(t, open(f"{out}/timings.json", "w"), indent=2, sort_keys=True)
    print(len(added))
    sys.exit(0)
full, vae, cdcae, out = sys.argv[1:5]
os.makedirs(out, exist_ok=True)
keep = [r for r in rows(f"{full}/results.csv") if r["method"] in ("raw", "jpeg", "webp")]
new = rows(f"{cdcae}/results.csv") + rows(f"{vae}/results.csv")
# CDC with the learned prior and its rate term (seed 0), from results-coding/ (same settings).
new += [r for r in rows(sys.argv[5] + "/results.csv") if r.get("rate_weight")]
write(f"{out}/results.csv", header(f"{vae}/results.csv"), keep + new)
# The current configuration schema (the vae-cls run's), set to what the merged rows were run with.
t = json.load(open(f"{vae}/timings.json"))
c = t["config"]
c["vaeMasks"] = [4, 3, 2]; c["masks"] = [4, 3]
c["includeAE"] = True; c["includeBaselines"] = True; c["includeRaw"] = True; c["codedRows"] = True
c["alphaSweep"] = []; c["autoAlpha"] = False; c["edge"]["alpha"] = 8
c["rateWeights"] = [0.005, 0.01, 0.03]; c["rateMasks"] = [2, 3, 4]
phases = {}
for d in (vae, cdcae):
    for k, v in json.load(open(f"{d}/timings.json")).get("phaseSeconds", {}).items():
        phases[k] = phases.get(k, 0) + v
t["phaseSeconds"] = phases
t["note"] = "raw, JPEG and WebP rows (and their times) from results-full/, learned-prior CDC rows (rate_weight) from results-coding/ (same settings); phaseSeconds: the CDC/AE run and the vae-cls run of docs/vae-cls.md"
json.dump(t, open(f"{out}/timings.json", "w"), indent=2, sort_keys=True)
print(len(keep), len(new))
