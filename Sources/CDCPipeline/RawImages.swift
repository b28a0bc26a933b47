import CDCData
import CDCImageCodecs

extension LabelledDataset {
    /// Every image as 8-bit interleaved samples, for the JPEG/WebP baselines.
    public func rawImages() -> [RawImage] {
        (0..<count).map { RawImage(width: width, height: height, channels: channels, pixels: image8(at: $0)) }
    }

    /// A dataset of decoded 8-bit images with the given labels.
    public static func fromRawImages(_ images: [RawImage], labels: [Int], classes: Int) throws -> LabelledDataset {
        guard let first = images.first else { throw PipelineError("no images") }
        guard images.allSatisfy({ $0.width == first.width && $0.height == first.height && $0.channels == first.channels }) else {
            throw PipelineError("decoded images differ in size or channels")
        }
        return LabelledDataset(images8: images.map(\.pixels), labels: labels, channels: first.channels, height: first.height,
                            width: first.width, classes: classes)
    }
}
