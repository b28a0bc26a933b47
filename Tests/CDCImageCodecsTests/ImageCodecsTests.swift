import Foundation
import Testing
import CDCImageCodecs

// MARK: - Synthetic images

/// A smooth image: sums of low-frequency sinusoids, different for each `seed`.
func smoothImage(width: Int, height: Int, channels: Int, seed: Int) -> RawImage {
    var pixels = [UInt8](repeating: 0, count: width * height * channels)
    let phase = Double(seed) * 0.7
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels {
                let fx = Double(x) / Double(width), fy = Double(y) / Double(height)
                let v = 128 + 70 * sin(2.3 * fx + 1.7 * fy + phase + Double(c))
                    + 30 * cos(3.1 * fy - 1.3 * fx + 2 * phase + 0.5 * Double(c))
                pixels[(y * width + x) * channels + c] = UInt8(max(0, min(255, v.rounded())))
            }
        }
    }
    return RawImage(width: width, height: height, channels: channels, pixels: pixels)
}

/// A Fashion-MNIST-like image: a bright smooth blob on a black background, with some texture.
func blobImage(seed: Int) -> RawImage {
    var pixels = [UInt8](repeating: 0, count: 28 * 28)
    var state = UInt64(seed &+ 1) &* 0x9E37_79B9_7F4A_7C15
    for y in 0..<28 {
        for x in 0..<28 {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let noise = Double(state >> 58) - 32
            let dx = Double(x) - 13.5, dy = Double(y) - 13.5
            let r = (dx * dx) / (64 + Double(seed % 5) * 8) + (dy * dy) / 110
            let v = r < 1 ? 200 - 80 * r + noise : 0
            pixels[y * 28 + x] = UInt8(max(0, min(255, v.rounded())))
        }
    }
    return RawImage(width: 28, height: 28, channels: 1, pixels: pixels)
}

func meanAbsoluteError(_ a: RawImage, _ b: RawImage) -> Double {
    precondition(a.pixels.count == b.pixels.count)
    var sum = 0
    for (x, y) in zip(a.pixels, b.pixels) { sum += abs(Int(x) - Int(y)) }
    return Double(sum) / Double(a.pixels.count)
}

// MARK: - JPEG

@Suite struct JPEGTests {
    @Test(arguments: [1, 3])
    func roundTripIsCloseAndDegradesWithQuality(channels: Int) throws {
        let image = smoothImage(width: 32, height: 32, channels: channels, seed: 1)
        let high = try JPEG.decode(JPEG.encode(image, quality: 90), channels: channels)
        let low = try JPEG.decode(JPEG.encode(image, quality: 10), channels: channels)
        #expect(high.width == 32 && high.height == 32 && high.channels == channels)
        let maeHigh = meanAbsoluteError(image, high), maeLow = meanAbsoluteError(image, low)
        print("JPEG \(channels)ch MAE q90 \(maeHigh), q10 \(maeLow)")
        #expect(maeHigh < 2.5)
        #expect(maeLow > maeHigh)
        #expect(maeLow < 20)
    }

    @Test func oddSizesRoundTrip() throws {
        let image = smoothImage(width: 30, height: 21, channels: 3, seed: 4)
        let decoded = try JPEG.decode(JPEG.encode(image, quality: 95), channels: 3)
        #expect(decoded.width == 30 && decoded.height == 21)
        #expect(meanAbsoluteError(image, decoded) < 2.5)
    }

    @Test(arguments: [1, 3])
    func bytesDecreaseWithQuality(channels: Int) throws {
        let image = smoothImage(width: 32, height: 32, channels: channels, seed: 2)
        let sizes = try [95, 75, 50, 25, 10].map { try JPEG.encode(image, quality: $0).count }
        print("JPEG \(channels)ch sizes at q95/75/50/25/10: \(sizes)")
        for (a, b) in zip(sizes, sizes.dropFirst()) { #expect(a > b) }
    }

    @Test(arguments: [1, 3])
    func splitJoinIsByteIdenticalAndDecodes(channels: Int) throws {
        let image = smoothImage(width: 28, height: 28, channels: channels, seed: 3)
        let file = try JPEG.encode(image, quality: 50)
        let (shared, perImage) = try JPEG.split(file)
        #expect(shared.count + perImage.count == file.count)
        #expect(Array(shared.prefix(2)) == [0xFF, 0xD8])          // SOI
        #expect(Array(perImage.prefix(2)) == [0xFF, 0xDA])        // SOS
        #expect(Array(perImage.suffix(2)) == [0xFF, 0xD9])        // EOI
        let joined = JPEG.join(shared: shared, perImage: perImage)
        #expect(joined == file)
        #expect(try JPEG.decode(joined, channels: channels) == JPEG.decode(file, channels: channels))
    }

    @Test(arguments: [1, 3])
    func sharedPartIsTheSameForDifferentImages(channels: Int) throws {
        for quality in [10, 50, 90] {
            let files = try (0..<6).map { try JPEG.encode(smoothImage(width: 28, height: 28, channels: channels,
                                                                       seed: $0 * 13), quality: quality) }
            let shared = try Set(files.map { try JPEG.split($0).shared })
            #expect(shared.count == 1)
            #expect(Set(files).count == files.count)              // the images really differ
            // The shared part of one image plus the per-image part of another decodes.
            let swapped = JPEG.join(shared: try JPEG.split(files[0]).shared, perImage: try JPEG.split(files[1]).perImage)
            #expect(try JPEG.decode(swapped, channels: channels) == JPEG.decode(files[1], channels: channels))
        }
        // Different qualities give different tables.
        let image = smoothImage(width: 28, height: 28, channels: channels, seed: 0)
        #expect(try JPEG.split(JPEG.encode(image, quality: 10)).shared != JPEG.split(JPEG.encode(image, quality: 90)).shared)
    }

    @Test func headerPayloadSplitOf28x28Gray() throws {
        for quality in [10, 15, 50, 90] {
            for (name, image) in [("smooth", smoothImage(width: 28, height: 28, channels: 1, seed: 5)),
                                  ("blob", blobImage(seed: 5))] {
                let file = try JPEG.encode(image, quality: quality)
                let (shared, perImage) = try JPEG.split(file)
                print("JPEG 28x28 gray \(name) q\(quality): file \(file.count) B = shared \(shared.count) + per-image \(perImage.count)")
                #expect(shared.count > 250 && shared.count < 400)
            }
        }
    }

    @Test func garbageAndTruncatedFilesThrow() throws {
        let file = try JPEG.encode(smoothImage(width: 28, height: 28, channels: 1, seed: 1), quality: 75)
        var state: UInt32 = 12345
        let garbage = (0..<500).map { _ -> UInt8 in state = state &* 1_103_515_245 &+ 12345; return UInt8(state >> 24) }
        #expect(throws: ImageCodecError.self) { try JPEG.decode(garbage, channels: 1) }
        #expect(throws: ImageCodecError.self) { try JPEG.decode([], channels: 1) }
        #expect(throws: ImageCodecError.self) { try JPEG.decode([0xFF, 0xD8, 0xFF], channels: 1) }
        for cut in [1, 10, 100, 200, 330, file.count - 40, file.count - 2] {
            #expect(throws: ImageCodecError.self) { try JPEG.decode(Array(file.prefix(cut)), channels: 1) }
        }
        #expect(throws: ImageCodecError.self) { try JPEG.split(garbage) }
        #expect(throws: ImageCodecError.self) { try JPEG.split(Array(file.prefix(100))) }
        #expect(throws: ImageCodecError.self) { try JPEG.decode(file, channels: 2) }
        #expect(throws: ImageCodecError.self) { try JPEG.encode(RawImage(width: 2, height: 2, channels: 1, pixels: [1]), quality: 50) }
        #expect(throws: ImageCodecError.self) { try JPEG.encode(smoothImage(width: 8, height: 8, channels: 1, seed: 0), quality: 0) }
    }

    @Test func decodesToOtherChannelCounts() throws {
        let rgb = smoothImage(width: 16, height: 16, channels: 3, seed: 1)
        let gray = try JPEG.decode(JPEG.encode(rgb, quality: 90), channels: 1)
        #expect(gray.channels == 1 && gray.pixels.count == 256)
        let g = smoothImage(width: 16, height: 16, channels: 1, seed: 1)
        let asRGB = try JPEG.decode(JPEG.encode(g, quality: 90), channels: 3)
        #expect(asRGB.channels == 3 && asRGB.pixels.count == 768)
        #expect(asRGB.pixels[0] == asRGB.pixels[1] && asRGB.pixels[1] == asRGB.pixels[2])
    }
}

// MARK: - WebP

@Suite struct WebPTests {
    @Test(arguments: [1, 3])
    func roundTripIsCloseAndDegradesWithQuality(channels: Int) throws {
        let image = smoothImage(width: 32, height: 32, channels: channels, seed: 1)
        let high = try WebP.decode(WebP.encode(image, quality: 90), channels: channels)
        let low = try WebP.decode(WebP.encode(image, quality: 10), channels: channels)
        #expect(high.width == 32 && high.height == 32 && high.channels == channels)
        let maeHigh = meanAbsoluteError(image, high), maeLow = meanAbsoluteError(image, low)
        print("WebP \(channels)ch MAE q90 \(maeHigh), q10 \(maeLow)")
        #expect(maeHigh < 3)
        #expect(maeLow > maeHigh)
        #expect(maeLow < 20)
    }

    @Test(arguments: [1, 3])
    func bytesDecreaseWithQuality(channels: Int) throws {
        let image = smoothImage(width: 32, height: 32, channels: channels, seed: 2)
        let sizes = try [95, 75, 50, 25, 5].map { try WebP.encode(image, quality: Float($0)).count }
        print("WebP \(channels)ch sizes at q95/75/50/25/5: \(sizes)")
        for (a, b) in zip(sizes, sizes.dropFirst()) { #expect(a >= b) }
        #expect(sizes.first! > sizes.last!)
    }

    @Test(arguments: [1, 3])
    func splitSumsToFileSize(channels: Int) throws {
        for quality: Float in [10, 50, 90] {
            let file = try WebP.encode(smoothImage(width: 28, height: 28, channels: channels, seed: 7), quality: quality)
            let (header, payload) = try WebP.split(file)
            #expect(header + payload == file.count)
            #expect(header == 20 || header == 21)                   // RIFF + "VP8 " chunk header (+ pad)
            #expect(Array(file[12..<16]) == Array("VP8 ".utf8))
        }
    }

    @Test func headerPayloadSplitOf28x28Gray() throws {
        for quality: Float in [10, 15, 50, 90] {
            for (name, image) in [("smooth", smoothImage(width: 28, height: 28, channels: 1, seed: 5)),
                                  ("blob", blobImage(seed: 5))] {
                let file = try WebP.encode(image, quality: quality)
                let (header, payload) = try WebP.split(file)
                print("WebP 28x28 gray \(name) q\(Int(quality)): file \(file.count) B = header \(header) + payload \(payload)")
            }
        }
    }

    @Test func garbageAndTruncatedFilesThrow() throws {
        let file = try WebP.encode(smoothImage(width: 28, height: 28, channels: 3, seed: 1), quality: 75)
        var state: UInt32 = 999
        let garbage = (0..<500).map { _ -> UInt8 in state = state &* 1_103_515_245 &+ 12345; return UInt8(state >> 24) }
        #expect(throws: ImageCodecError.self) { try WebP.decode(garbage, channels: 3) }
        #expect(throws: ImageCodecError.self) { try WebP.decode([], channels: 3) }
        for cut in [1, 12, 20, 30, file.count / 2, file.count - 1] {
            #expect(throws: ImageCodecError.self) { try WebP.decode(Array(file.prefix(cut)), channels: 3) }
            #expect(throws: ImageCodecError.self) { try WebP.split(Array(file.prefix(cut))) }
        }
        #expect(throws: ImageCodecError.self) { try WebP.split(garbage) }
        #expect(throws: ImageCodecError.self) { try WebP.encode(smoothImage(width: 8, height: 8, channels: 1, seed: 0), quality: 101) }
    }
}

// MARK: - Dataset measurement

@Suite struct BaselineCodecTests {
    @Test(arguments: ImageCodecKind.allCases)
    func measurementIsConsistent(kind: ImageCodecKind) throws {
        let images = (0..<40).map { smoothImage(width: 28, height: 28, channels: 1, seed: $0) }
        let m = try BaselineCodec.measure(images, kind: kind, quality: 50)
        #expect(m.kind == kind && m.quality == 50 && m.images == 40 && m.pixelsPerImage == 784)
        #expect(m.decoded.count == 40)
        #expect(m.distinctSharedParts == 1)
        let pixels = Double(40 * 784)
        #expect(abs(m.bitsPerPixelWholeFiles - 8 * Double(m.wholeFileBytes) / pixels) < 1e-12)
        #expect(abs(m.bitsPerPixelSharedHeaders - 8 * Double(m.sharedHeaderBytes + m.perImageBytes) / pixels) < 1e-12)
        #expect(m.bitsPerPixelSharedHeaders < m.bitsPerPixelWholeFiles)
        #expect(m.perImageBytes < m.wholeFileBytes)
        // Files coded one at a time have the same sizes and decode to the same pixels.
        var whole = 0
        for (image, decoded) in zip(images, m.decoded) {
            switch kind {
            case .jpeg:
                let file = try JPEG.encode(image, quality: 50)
                whole += file.count
                #expect(try JPEG.decode(file, channels: 1) == decoded)
            case .webp:
                let file = try WebP.encode(image, quality: 50)
                whole += file.count
                #expect(try WebP.decode(file, channels: 1) == decoded)
            }
            #expect(meanAbsoluteError(image, decoded) < 10)
        }
        #expect(whole == m.wholeFileBytes)
        if kind == .webp { #expect(m.sharedHeaderBytes == 20 || m.sharedHeaderBytes == 21) }
        print("\(kind) q50 28x28 gray x40: whole \(m.wholeFileBytes) B (\(m.bitsPerPixelWholeFiles) bpp), "
              + "shared \(m.sharedHeaderBytes) + per-image \(m.perImageBytes) B (\(m.bitsPerPixelSharedHeaders) bpp)")
    }

    @Test func jpeg28x28GrayAtQuality15IsMostlyHeader() throws {
        let images = (0..<50).map { blobImage(seed: $0) }
        let m = try BaselineCodec.measure(images, kind: .jpeg, quality: 15)
        let perFile = Double(m.wholeFileBytes) / Double(m.images)
        let perImage = Double(m.perImageBytes) / Double(m.images)
        print("JPEG q15 28x28 gray: \(perFile) B per file = shared \(m.sharedHeaderBytes) + \(perImage) B per image; "
              + "\(m.bitsPerPixelWholeFiles) bpp whole files, \(m.bitsPerPixelSharedHeaders) bpp shared headers")
        #expect(perFile > 300 && perFile < 700)
        #expect(Double(m.sharedHeaderBytes) > 0.5 * perFile)
        #expect(m.sharedHeaderBytes > 250 && m.sharedHeaderBytes < 400)
        #expect(m.bitsPerPixelWholeFiles > 3)
        #expect(m.bitsPerPixelSharedHeaders < m.bitsPerPixelWholeFiles / 2)
    }

    @Test func rgbDatasetMeasures() throws {
        let images = (0..<20).map { smoothImage(width: 32, height: 32, channels: 3, seed: $0) }
        for kind in ImageCodecKind.allCases {
            let m = try BaselineCodec.measure(images, kind: kind, quality: 75)
            #expect(m.decoded.count == 20 && m.decoded.allSatisfy { $0.channels == 3 && $0.width == 32 })
            #expect(m.pixelsPerImage == 1024)
            #expect(m.bitsPerPixelSharedHeaders < m.bitsPerPixelWholeFiles)
            print("\(kind) q75 32x32 RGB x20: \(m.bitsPerPixelWholeFiles) bpp whole, \(m.bitsPerPixelSharedHeaders) bpp shared")
        }
    }

    @Test(arguments: ImageCodecKind.allCases)
    func qualitiesAreMonotoneAndClose(kind: ImageCodecKind) throws {
        let sample = (0..<12).map { blobImage(seed: $0) }
        let targets = [1.0, 2, 3, 4, 5]
        let qualities = try BaselineCodec.qualities(bracketing: targets, kind: kind, sample: sample,
                                                   counting: \.bitsPerPixelSharedHeaders)
        let rates = try qualities.map {
            try BaselineCodec.measure(sample, kind: kind, quality: $0).bitsPerPixelSharedHeaders
        }
        print("\(kind) qualities for \(targets) bpp (shared headers): \(qualities), measured \(rates)")
        #expect(qualities.count == targets.count)
        for (a, b) in zip(qualities, qualities.dropFirst()) { #expect(a <= b) }
        #expect(qualities.allSatisfy { (1...100).contains($0) })
        // Order of targets is respected.
        let reversed = try BaselineCodec.qualities(bracketing: targets.reversed(), kind: kind, sample: sample,
                                                  counting: \.bitsPerPixelSharedHeaders)
        #expect(reversed == qualities.reversed())
    }

    @Test func invalidDatasetsThrow() throws {
        #expect(throws: ImageCodecError.self) { try BaselineCodec.measure([], kind: .jpeg, quality: 50) }
        let mixed = [smoothImage(width: 28, height: 28, channels: 1, seed: 0),
                     smoothImage(width: 32, height: 32, channels: 1, seed: 0)]
        #expect(throws: ImageCodecError.self) { try BaselineCodec.measure(mixed, kind: .webp, quality: 50) }
        #expect(throws: ImageCodecError.self) { try BaselineCodec.measure([mixed[0]], kind: .jpeg, quality: 0) }
    }

    @Test func errorsDescribeTheCall() throws {
        do {
            _ = try JPEG.decode([0x00, 0x01, 0x02, 0x03, 0x04, 0x05], channels: 1)
            Issue.record("expected an error")
        } catch let error as ImageCodecError {
            print("error: \(error)")
            #expect(error.description.contains("tjDecompressHeader3"))
        }
        do {
            _ = try WebP.decode(Array("RIFF\u{0}\u{0}\u{0}\u{0}WEBPVP8 ".utf8), channels: 3)
            Issue.record("expected an error")
        } catch let error as ImageCodecError {
            print("error: \(error)")
            #expect(error.description.contains("WebP"))
        }
    }
}
