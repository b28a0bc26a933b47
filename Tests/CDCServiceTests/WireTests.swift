import CDCCodec
import CDCWire
import Testing

@Suite struct UploadPartsTests {
    @Test(arguments: [1, 7, 64, 300, 1000])
    func partsJoinBackToTheContainer(samplesPerPart: Int) throws {
        let (container, _) = try toyUpload(count: 300, mask: 3)
        for c in [container, try container.entropyCoded()] {
            let parts = try c.parts(samplesPerPart: samplesPerPart)
            #expect(parts.count == (300 + samplesPerPart - 1) / samplesPerPart)
            #expect(parts.allSatisfy { $0.coding == c.coding && $0.count <= samplesPerPart })
            let decoded = try parts.map { try LatentContainer.decode(try $0.checkedEncoded()) }
            let joined = try LatentContainer.joined(decoded)
            #expect(joined.symbols == container.symbols && joined.labels == container.labels)
        }
    }
}

@Suite struct MaskPolicyTests {
    let latents = 784   // 16×7×7
    func inputs(_ bytesPerSecond: Double?, best: Int? = nil, converged: Bool = false, measured: [Int: Double] = [:]) -> MaskPolicy.Inputs {
        MaskPolicy.Inputs(samples: 10_000, latentsPerSample: latents, bytesPerSecond: bytesPerSecond,
                          measuredBytesPerSample: measured, bestStoredMask: best, converged: converged)
    }

    @Test func picksTheClearestMaskThatFitsTheBudget() {
        let policy = MaskPolicy(timeBudget: 10)
        // Fixed-length sizes: (5 − m) · 784 / 8 bytes per sample → m=4: 980 kB, m=0: 4.9 MB for 10 000 samples.
        #expect(policy.request(inputs(nil)).mask == 4)
        #expect(policy.request(inputs(125_000)).mask == 4)        // 1 Mbit/s: only m = 4 (7.8 s) fits
        #expect(policy.request(inputs(250_000)).mask == 3)        // 2 Mbit/s
        #expect(policy.request(inputs(2_500_000)).mask == 0)      // 20 Mbit/s
        #expect(policy.request(inputs(1_000)).mask == 4)          // nothing fits: the cheapest
    }

    @Test func measuredSizesScaleToOtherMasks() {
        let policy = MaskPolicy(timeBudget: 10)
        // Coded m = 4 measured at 49 bytes/sample (half of fixed): m = 2 estimated at 3/1 · 49.
        let i = inputs(50_000, measured: [4: 49])
        #expect(policy.bytesPerSample(mask: 4, i) == 49)
        #expect(policy.bytesPerSample(mask: 2, i) == 147)
        #expect(policy.request(i).mask == 4)   // m = 4: 9.8 s fits; m = 3: 98 B × 10 000 / 50 kB/s = 19.6 s does not
        #expect(policy.request(inputs(100_000, measured: [4: 49])).mask == 3)   // 9.8 s
    }

    @Test func clearerDataOnlyAfterConvergenceAndNeverCoarser() {
        let policy = MaskPolicy(timeBudget: 10)
        #expect(policy.request(inputs(2_500_000, best: 4, converged: false)).mask == nil)
        #expect(policy.request(inputs(2_500_000, best: 4, converged: true)).mask == 0)
        #expect(policy.request(inputs(125_000, best: 4, converged: true)).mask == nil)   // nothing clearer fits
        #expect(policy.request(inputs(2_500_000, best: 0, converged: true)).mask == nil)  // nothing clearer exists
        #expect(policy.request(inputs(nil, best: 3)).mask == nil)
    }
}

extension MaskPolicyTests {
    @Test func theDecoderCountsInEveryEstimate() {
        let policy = MaskPolicy(timeBudget: 10)
        var i = inputs(100_000, measured: [4: 49])   // m = 3: 98 B × 10 000 = 980 kB: 9.8 s
        #expect(policy.request(i).mask == 3)
        i.decoderBytes = 86_000                       // + 0.86 s: no longer fits
        #expect(policy.uploadSeconds(mask: 3, i)! > 10)
        #expect(policy.request(i).mask == 4)
        // Nothing fits: m = 4 is still asked for, and the reason says it does not fit.
        let none = policy.request(inputs(1_000))
        #expect(none.mask == 4 && none.reason.contains("no m fits"))
    }

    @Test func anUnfinishedUploadIsFinishedFirst() {
        let policy = MaskPolicy(timeBudget: 10)
        var i = inputs(2_500_000)                    // m = 0 fits, but m = 4 was half uploaded
        i.unfinishedMask = 4
        #expect(policy.request(i).mask == 4 && policy.request(i).fittingMask == 0)
        i = inputs(2_500_000, best: 4, converged: false)
        i.unfinishedMask = 2                          // asked for earlier, interrupted: resumed even before convergence
        #expect(policy.request(i).mask == 2)
        i.unfinishedMask = 4                          // not clearer than what is held: ignored
        #expect(policy.request(i).mask == nil)
    }
}

@Suite struct MaskRequestTests {
    @Test func fittingMaskFollowsTheBandwidthEvenWhenNothingIsAsked() {
        let policy = MaskPolicy(timeBudget: 10)
        let slow = MaskPolicy.Inputs(samples: 10_000, latentsPerSample: 784, bytesPerSecond: 125_000, bestStoredMask: 4)
        var fast = slow
        fast.bytesPerSecond = 2_500_000
        #expect(policy.request(slow).mask == nil && policy.request(slow).fittingMask == 4)
        #expect(policy.request(fast).mask == nil && policy.request(fast).fittingMask == 0)
    }
}
