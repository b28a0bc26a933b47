import CDCData
import CDCTensor
import Foundation
import Testing

/// A dataset whose pixels are all distinct and non-zero, labels `labelOf(i)`.
func syntheticDataset(count: Int, channels: Int, height: Int, width: Int, classes: Int,
                      labelOf: (Int) -> Int = { $0 }) -> LabelledDataset {
    let per = channels * height * width
    let pixels = (0..<(count * per)).map { Float($0 + 1) / Float(count * per + 1) }
    return LabelledDataset(pixels: pixels, labels: (0..<count).map { labelOf($0) % classes }, channels: channels,
                        height: height, width: width, classes: classes)
}

@Suite struct SplitTests {
    /// 60 one-pixel images, image i holds i: classes of 10, 20 and 30 images.
    let data: LabelledDataset = {
        let labels = (0..<60).map { i in i % 6 == 0 ? 0 : (i % 6 <= 2 ? 1 : 2) }
        return LabelledDataset(pixels: (0..<60).map { Float($0) }, labels: labels, channels: 1, height: 1, width: 1,
                            classes: 3, classNames: ["a", "b", "c"])
    }()

    func ids(_ d: LabelledDataset) -> [Int] { d.pixels.map { Int($0) } }
    func perClass(_ d: LabelledDataset) -> [Int] { (0..<3).map { c in d.labels.filter { $0 == c }.count } }

    @Test func sizesStratificationAndDisjointness() {
        #expect(perClass(data) == [10, 20, 30])
        let (train, val) = data.split(validationFraction: 0.2, seed: 7)
        #expect(val.count == 12 && train.count == 48)
        #expect(perClass(val) == [2, 4, 6] && perClass(train) == [8, 16, 24])
        #expect(Set(ids(train)).isDisjoint(with: ids(val)))
        #expect((ids(train) + ids(val)).sorted() == Array(0..<60))
        // Original order is kept within each part, with labels still attached to their images.
        #expect(ids(train) == ids(train).sorted() && ids(val) == ids(val).sorted())
        #expect(zip(ids(val), val.labels).allSatisfy { data.labels[$0] == $1 })
        #expect(train.classes == 3 && val.classNames == ["a", "b", "c"])
        // Uneven shares: round(0.25 × 60) = 15; exact shares 2.5, 5, 7.5 → the tie goes to class 0.
        let (_, v25) = data.split(validationFraction: 0.25, seed: 1)
        #expect(v25.count == 15 && perClass(v25) == [3, 5, 7])
        // Extremes.
        #expect(data.split(validationFraction: 0, seed: 1).validation.count == 0)
        #expect(data.split(validationFraction: 1, seed: 1).train.count == 0)
    }

    @Test func deterministicPerSeed() {
        let a = data.split(validationFraction: 0.3, seed: 42), b = data.split(validationFraction: 0.3, seed: 42)
        #expect(ids(a.validation) == ids(b.validation) && ids(a.train) == ids(b.train))
        #expect(a.validation.pixels == b.validation.pixels && a.validation.labels == b.validation.labels)
        let c = data.split(validationFraction: 0.3, seed: 43)
        #expect(ids(c.validation) != ids(a.validation))
        #expect(c.validation.count == a.validation.count)
    }

    @Test func subsetAndPrefix() {
        let d = syntheticDataset(count: 5, channels: 2, height: 2, width: 3, classes: 5)
        let s = d.subset([4, 1])
        #expect(s.labels == [4, 1] && s.pixels == Array(d.pixels[48..<60]) + Array(d.pixels[12..<24]))
        #expect(d.prefix(2).labels == [0, 1])
    }
}

@Suite struct AugmentationTests {
    let data = syntheticDataset(count: 40, channels: 3, height: 5, width: 7, classes: 4)

    func sample(_ t: Tensor, _ i: Int) -> [Float] {
        let per = data.sampleSize
        return Array(t.values[(i * per)..<((i + 1) * per)])
    }

    func source(_ i: Int) -> [Float] { Array(data.pixels[(i * data.sampleSize)..<((i + 1) * data.sampleSize)]) }

    /// `img` shifted by (oy, ox) — out[y][x] = img[y + oy][x + ox], zero outside — then flipped if asked.
    func shifted(_ img: [Float], oy: Int, ox: Int, flip: Bool) -> [Float] {
        let (c, h, w) = (data.channels, data.height, data.width)
        var out = [Float](repeating: 0, count: c * h * w)
        for ch in 0..<c {
            for y in 0..<h {
                for x in 0..<w {
                    let u = flip ? w - 1 - x : x
                    let sy = y + oy, sx = u + ox
                    if sy >= 0 && sy < h && sx >= 0 && sx < w { out[(ch * h + y) * w + x] = img[(ch * h + sy) * w + sx] }
                }
            }
        }
        return out
    }

    /// The (oy, ox, flip) that explains `out` from `img`, if any.
    func explain(_ out: [Float], from img: [Float], padding p: Int, flips: [Bool]) -> (Int, Int, Bool)? {
        for flip in flips {
            for oy in -p...p { for ox in -p...p where shifted(img, oy: oy, ox: ox, flip: flip) == out { return (oy, ox, flip) } }
        }
        return nil
    }

    @Test func identityWithoutPaddingOrFlip() {
        let plain = data.batch(Array(0..<40)).0.values
        for aug in [Augmentation.identity, Augmentation(padding: 0, randomCrop: true, horizontalFlip: false),
                    Augmentation(padding: 4, randomCrop: false, horizontalFlip: false)] {
            var g = SeededGenerator(seed: 3)
            #expect(data.batch(Array(0..<40), augmentation: aug, generator: &g).0.values == plain)
        }
    }

    @Test func flipReversesRows() {
        var g = SeededGenerator(seed: 11)
        let (t, ys) = data.batch(Array(0..<40), augmentation: Augmentation(padding: 0, randomCrop: false, horizontalFlip: true),
                                 generator: &g)
        #expect(ys == data.labels)
        var flipped = 0
        for i in 0..<40 {
            let out = sample(t, i), img = source(i)
            if out == img { continue }
            flipped += 1
            #expect(out == shifted(img, oy: 0, ox: 0, flip: true))
        }
        #expect(flipped > 5 && flipped < 35)   // about half
    }

    @Test func cropIsAShiftedCopyWithZeroBorder() {
        var g = SeededGenerator(seed: 5)
        let aug = Augmentation(padding: 2, randomCrop: true, horizontalFlip: false)
        let (t, _) = data.batch(Array(0..<40), augmentation: aug, generator: &g)
        #expect(t.shape == [40, 3, 5, 7])
        var shifts = Set<[Int]>()
        for i in 0..<40 {
            let out = sample(t, i)
            guard let (oy, ox, _) = explain(out, from: source(i), padding: 2, flips: [false]) else {
                Issue.record("sample \(i) is not a shifted copy"); continue
            }
            shifts.insert([oy, ox])
            // Zeros exactly where the window leaves the image.
            if oy > 0 { #expect(out[(4 * 7)..<(5 * 7)].allSatisfy { $0 == 0 }) }
            if ox < 0 { #expect((0..<5).allSatisfy { y in out[y * 7] == 0 }) }
        }
        #expect(shifts.count > 8)
        // Crop and flip together: still explained by one shift and a flip.
        var g2 = SeededGenerator(seed: 6)
        let (t2, _) = data.batch(Array(0..<40), augmentation: .fashionMNIST, generator: &g2)
        var flips = 0
        for i in 0..<40 {
            guard let (_, _, f) = explain(sample(t2, i), from: source(i), padding: 2, flips: [false, true]) else {
                Issue.record("sample \(i) is not a shifted, flipped copy"); continue
            }
            if f { flips += 1 }
        }
        #expect(flips > 5 && flips < 35)
    }

    @Test func deterministicPerSeed() {
        func run(_ seed: UInt64) -> [([Float], [Int])] {
            var g = SeededGenerator(seed: seed)
            return data.batches(size: 16, shuffle: 9, dropLast: false, augmentation: .cifar, generator: &g)
                .map { ($0.0.values, $0.1) }
        }
        let a = run(1), b = run(1), c = run(2)
        #expect(a.count == 3 && a.map(\.1) == data.batches(size: 16, shuffle: 9).map(\.1))
        #expect(zip(a, b).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 })
        #expect(zip(a, c).contains { $0.0 != $1.0 })
        // dropLast and the generator carried across epochs.
        var g = SeededGenerator(seed: 1)
        let e1 = data.batches(size: 16, shuffle: 9, dropLast: true, augmentation: .cifar, generator: &g)
        let e2 = data.batches(size: 16, shuffle: 9, dropLast: true, augmentation: .cifar, generator: &g)
        #expect(e1.count == 2 && e1[0].0.values == a[0].0 && e2[0].0.values != e1[0].0.values)
    }

    @Test func inPlaceMatchesBatch() {
        let idx = [3, 1, 4, 1, 5, 9, 2, 6]
        var g1 = SeededGenerator(seed: 77), g2 = SeededGenerator(seed: 77)
        let (a, _) = data.batch(idx, augmentation: .cifar, generator: &g1)
        let (b, _) = data.batch(idx)
        Augmentation.cifar.apply(to: b, generator: &g2)
        #expect(a.values == b.values)
        #expect(g1.next() == g2.next())
    }

    @Test func presets() {
        #expect(Augmentation.standard(height: 32, width: 32).padding == 4)
        #expect(Augmentation.standard(height: 28, width: 28).padding == 2)
        #expect(Augmentation() == .cifar)
    }
}

@Suite struct UInt8ImageTests {
    @Test(arguments: [1, 3])
    func hwcRoundTrip(channels: Int) {
        let (h, w) = (4, 5)
        let images: [[UInt8]] = (0..<3).map { s in (0..<(h * w * channels)).map { UInt8(truncatingIfNeeded: $0 * 13 + s * 77) } }
        let d = LabelledDataset(images8: images, labels: [2, 0, 1], channels: channels, height: h, width: w, classes: 3)
        #expect(d.count == 3 && d.channels == channels && d.height == h && d.width == w)
        // CHW inside: pixel (c, y, x) of image i is byte ((y·w + x)·channels + c) of the HWC input.
        let per = channels * h * w
        for i in 0..<3 {
            for c in 0..<channels {
                for y in 0..<h {
                    for x in 0..<w {
                        #expect(d.pixels[i * per + (c * h + y) * w + x] == Float(images[i][(y * w + x) * channels + c]) / 255)
                    }
                }
            }
        }
        let back = d.uint8Images()
        #expect(back.map(\.pixels) == images && back.map(\.label) == [2, 0, 1])
        #expect(d.image8(at: 2) == images[2])
    }

    @Test func roundsAndClamps() {
        let d = LabelledDataset(pixels: [-0.5, 0.002, 0.5, 1.7], labels: [0], channels: 1, height: 2, width: 2, classes: 1)
        #expect(d.image8(at: 0) == [0, 1, 128, 255])
    }
}
