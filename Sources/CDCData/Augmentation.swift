import CDCTensor

/// Data augmentation for classifier training, applied per sample: zero-pad by `padding` pixels
/// on every side and crop a random `height × width` window back out (`randomCrop`), then mirror
/// left–right with probability ½ (`horizontalFlip`) — torchvision's
/// `RandomCrop(size, padding)` + `RandomHorizontalFlip()`.
///
/// Without `randomCrop` the padding has no effect (the centred window is the image itself).
/// Presets: ``cifar`` pads 4 pixels (the usual recipe for 32×32), ``fashionMNIST`` pads 2 (a
/// shift of up to 2 of 28 pixels, as the MNIST-family literature uses, keeps the small glyph-like
/// items in view); ``standard(height:width:)`` picks between them by size.
public struct Augmentation: Sendable, Equatable {
    /// Zero padding on each side before the random crop (the crop shifts by up to ±`padding`).
    public var padding: Int
    /// Crop a random window of the original size from the padded image.
    public var randomCrop: Bool
    /// Mirror each image left–right with probability ½.
    public var horizontalFlip: Bool

    /// An augmentation; the defaults are the CIFAR recipe (pad 4, random crop, flip).
    public init(padding: Int = 4, randomCrop: Bool = true, horizontalFlip: Bool = true) {
        precondition(padding >= 0, "padding must be non-negative")
        self.padding = padding; self.randomCrop = randomCrop; self.horizontalFlip = horizontalFlip
    }

    /// No change to the images.
    public static let identity = Augmentation(padding: 0, randomCrop: false, horizontalFlip: false)
    /// CIFAR-10/100 (32×32): pad 4, random crop, horizontal flip.
    public static let cifar = Augmentation(padding: 4, randomCrop: true, horizontalFlip: true)
    /// Fashion-MNIST (28×28): pad 2, random crop, horizontal flip (clothes are near-symmetric).
    public static let fashionMNIST = Augmentation(padding: 2, randomCrop: true, horizontalFlip: true)

    /// Random crop and flip with padding 4 for images of 32 pixels or more, 2 for smaller ones.
    public static func standard(height: Int, width: Int) -> Augmentation {
        min(height, width) >= 32 ? .cifar : .fashionMNIST
    }

    /// The random choices for one sample: crop offset into the padded image (0…2·padding on
    /// each axis; `padding` is the centre) and whether to flip.
    struct Draw {
        var dy: Int, dx: Int, flip: Bool
    }

    /// Draws one sample's choices: the row offset, then the column offset (when cropping with
    /// padding), then the flip bit (when flipping).
    func draw(using g: inout SeededGenerator) -> Draw {
        var d = Draw(dy: padding, dx: padding, flip: false)
        if randomCrop && padding > 0 {
            let span = UInt64(2 * padding + 1)
            d.dy = Int(g.next() % span)
            d.dx = Int(g.next() % span)
        }
        if horizontalFlip { d.flip = g.next() >> 63 == 1 }
        return d
    }

    /// Writes the augmented copy of one `channels × height × width` image from `src` into `dst`
    /// (distinct buffers): `dst[c, y, x] = src[c, y + dy − p, x' + dx − p]` where `x' = x` or
    /// `width − 1 − x` when flipped, and 0 where that falls outside the image.
    static func transform(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, channels: Int,
                          height: Int, width: Int, padding p: Int, draw: Draw) {
        let oy = draw.dy - p, ox = draw.dx - p
        if oy == 0 && ox == 0 && !draw.flip {
            dst.update(from: src, count: channels * height * width)
            return
        }
        // Output columns whose source column x + ox lies inside the image (before flipping).
        let x0 = max(0, -ox), x1 = min(width, width - ox)
        for c in 0..<channels {
            let plane = src + c * height * width, out = dst + c * height * width
            for y in 0..<height {
                let row = out + y * width, sy = y + oy
                guard sy >= 0 && sy < height, x0 < x1 else {
                    row.update(repeating: 0, count: width)
                    continue
                }
                let srow = plane + sy * width
                if !draw.flip {
                    row.update(repeating: 0, count: x0)
                    (row + x0).update(from: srow + x0 + ox, count: x1 - x0)
                    (row + x1).update(repeating: 0, count: width - x1)
                } else {
                    // Unflipped column u ∈ [x0, x1) lands at width − 1 − u.
                    let lo = width - x1, hi = width - x0
                    row.update(repeating: 0, count: lo)
                    for x in lo..<hi { row[x] = srow[width - 1 - x + ox] }
                    (row + hi).update(repeating: 0, count: width - hi)
                }
            }
        }
    }

    /// Augments a `[n, channels, height, width]` batch in place, sample by sample, with draws
    /// from `generator` (the same draws as ``LabelledDataset/batch(_:augmentation:generator:)``).
    public func apply(to batch: Tensor, generator: inout SeededGenerator) {
        precondition(batch.rank == 4, "augmentation expects a [n, channels, height, width] batch")
        let (n, c, h, w) = (batch.shape[0], batch.shape[1], batch.shape[2], batch.shape[3])
        let per = c * h * w
        let p = batch.mutablePointer
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: per)
        defer { scratch.deallocate() }
        for i in 0..<n {
            let d = draw(using: &generator)
            if d.dy == padding && d.dx == padding && !d.flip { continue }
            scratch.update(from: p + i * per, count: per)
            Augmentation.transform(scratch, into: p + i * per, channels: c, height: h, width: w, padding: padding, draw: d)
        }
    }

    /// Shifts every clip of a `[n, 1, length]` audio batch in place by a random whole number of
    /// samples in −maxShift…maxShift (drawn from `generator`, one per clip in order); the
    /// samples shifted in are zeros.
    public static func timeShift(_ batch: Tensor, maxShift: Int, generator: inout SeededGenerator) {
        precondition(batch.rank == 3, "a time shift expects a [n, channels, length] batch")
        guard maxShift > 0 else { return }
        let (n, per) = (batch.shape[0], batch.shape[1] * batch.shape[2])
        let p = batch.mutablePointer
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: per)
        defer { scratch.deallocate() }
        for i in 0..<n {
            let shift = Int(generator.next() % UInt64(2 * maxShift + 1)) - maxShift
            guard shift != 0, abs(shift) < per else { continue }
            let clip = p + i * per
            scratch.update(from: clip, count: per)
            clip.update(repeating: 0, count: per)
            if shift > 0 { (clip + shift).update(from: scratch, count: per - shift) }
            else { clip.update(from: scratch - shift, count: per + shift) }
        }
    }
}
