import CDCCodec
import CDCData
import CDCPipeline
import CDCTensor
import Foundation
import Testing

/// Colour images of another size than Fashion-MNIST's, end to end through the library calls the
/// commands make: a CIFAR-10 binary directory written here, edge training, compression into a
/// container whose decoder file carries the image shape, restoration without being told the
/// shape, and a cloud classifier above chance on the restored test images.
@Suite struct ColourPipelineTests {
    /// CIFAR-10 records (label byte + R, G, B planes of 32×32) of 2 classes: class c is
    /// brightest in channel c (with seeded noise).
    func cifarBatch(count: Int, seed: UInt64) -> [UInt8] {
        var g = SeededGenerator(seed: seed)
        var bytes: [UInt8] = []
        for _ in 0..<count {
            let label = Int(g.next() % 2)
            bytes.append(UInt8(label))
            for channel in 0..<3 {
                for _ in 0..<1024 { bytes.append(UInt8((channel == label ? 150 : 40) + Int(g.next() % 60))) }
            }
        }
        return bytes
    }

    @Test func cifarDirectoryRunsEndToEnd() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cdc-colour-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for i in 1...5 { try Data(cifarBatch(count: i == 1 ? 124 : 1, seed: UInt64(i))).write(to: dir.appendingPathComponent("data_batch_\(i).bin")) }
        try Data(cifarBatch(count: 32, seed: 9)).write(to: dir.appendingPathComponent("test_batch.bin"))

        let source = try DatasetSource(path: dir)
        #expect(source.format == .cifar10)
        let train = try source.load(.train), test = try source.load(.test)
        #expect(train.count == 128 && train.channels == 3 && train.height == 32 && train.width == 32)

        var config = EdgeConfig()
        config.batchSize = 16; config.epochs = 4; config.mask = 3
        let session = try EdgeSession(config: config, for: train)
        for _ in 0..<config.epochs { session.trainEpoch(train) }
        let decoder = try EdgeCodec.decoderFile(session.autoencoder, channels: 3, height: 32, width: 32)
        let hash = ModelIdentity.hash(decoder)
        let trainCodes = try session.compress(train, coding: .auto, decoderHash: hash)
        let testCodes = try session.compress(test, coding: .auto, decoderHash: hash)
        #expect(trainCodes.latentShape == [16, 8, 8])

        // The cloud: the shape comes from the decoder file.
        let restored = try EdgeCodec.restore(LatentContainer.decode(trainCodes.encoded()), decoderFile: decoder)
        #expect(restored.channels == 3 && restored.height == 32 && restored.width == 32 && restored.labels == train.labels)
        var cc = ClassifierConfig()
        cc.batchSize = 16; cc.epochs = 6; cc.augment = false
        let model = try CloudClassifier.train(restored, config: cc)
        let accuracy = CloudClassifier.accuracy(model, on: try EdgeCodec.restore(testCodes, decoderFile: decoder))
        let majority = Float(max(test.labels.filter { $0 == 0 }.count, test.labels.filter { $0 == 1 }.count)) / Float(test.count)
        #expect(accuracy > majority, "accuracy \(accuracy) through the codec, majority class \(majority)")
    }

    @Test func sizesTheAutoencoderCannotTakeAreRefused() throws {
        let odd = LabelledDataset(pixels: [Float](repeating: 0.5, count: 32 * 3 * 30 * 30), labels: Array(repeating: 0, count: 32),
                               channels: 3, height: 30, width: 30, classes: 2)
        var config = EdgeConfig()
        config.batchSize = 16
        #expect(throws: PipelineError.self) { _ = try EdgeSession(config: config, for: odd) }
        do { _ = try EdgeSession(config: config, for: odd) } catch { #expect("\(error)".contains("30×30")) }
    }

    @Test func aDecoderFileWithoutSizeRestoresFromTheLatentShape() throws {
        let data = LabelledDataset(pixels: (0..<(16 * 3 * 12 * 12)).map { Float($0 % 7) / 7 }, labels: (0..<16).map { $0 % 2 },
                                channels: 3, height: 12, width: 12, classes: 2)
        var config = EdgeConfig()
        config.batchSize = 8
        let session = try EdgeSession(config: config, for: data)
        let decoder = try EdgeCodec.decoderFile(session.autoencoder, channels: 3)
        let codes = try session.compress(data, coding: .fixed, decoderHash: ModelIdentity.hash(decoder))
        let restored = try EdgeCodec.restore(codes, decoderFile: decoder)
        #expect(restored.height == 12 && restored.width == 12 && restored.channels == 3)
        // Codes for another decoder are refused.
        let other = try EdgeCodec.decoderFile(session.autoencoder, channels: 3, height: 12, width: 12)
        #expect(throws: PipelineError.self) { _ = try EdgeCodec.restore(codes, decoderFile: other) }
    }
}
