package dev.vigil.state;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.stream.Stream;
import org.apache.flink.api.common.typeutils.TypeSerializerSnapshot;
import org.apache.flink.api.java.typeutils.runtime.PojoSerializerSnapshot;
import org.apache.flink.core.memory.DataInputDeserializer;
import org.apache.flink.core.memory.DataOutputSerializer;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

class DeviceStateSchemaTest {

    private static final DeviceStateSerializer SERIALIZER = DeviceStateSchema.serializer();

    /** A device in the middle of an open episode, every field set. */
    static DeviceState inEpisode() {
        DeviceState s = DeviceState.fresh("fleet-gru-2026-11-25+sha256:97bdd9502311", 64, 16);
        for (int i = 0; i < 64; i++) {
            s.hidden[i] = (float) Math.sin(i) * 0.9f;
        }
        for (int i = 0; i < 16; i++) {
            s.forecast[i] = i * 0.125f - 1f;
            s.episodeShares[i] = i * 0.5f;
        }
        s.steps = 4_242;
        s.lastTs = 1_764_000_000_000L;
        s.lastSeq = 4_711;
        s.aboveRun = 3;
        s.belowRun = 1;
        s.episodeOpen = true;
        s.episodeStart = 1_763_999_990_000L;
        s.episodePeak = 9.7f;
        s.episodeSteps = 12;
        s.scoreLevel = 1.0625f;
        return s;
    }

    /**
     * {@link #inEpisode()} with a learned profile (with the spread of per-device normalisation) and
     * unchanged-value runs of 16 target features (format 2).
     */
    static DeviceState inEpisodeWithProfile() {
        DeviceState s = inEpisode();
        s.resetProfile(16, true);
        s.episodeReasons = 3;
        s.profileSteps = 1_000;
        for (int i = 0; i < 16; i++) {
            s.levelMean[i] = 0.25f * i - 2f;
            s.profileMean[i] = 0.125f * i;
            s.profileVar[i] = 0.5f + i;
            s.valueVar[i] = 2f + 0.5f * i;
        }
        s.resetRuns(16);
        for (int i = 0; i < 16; i++) {
            s.lastValues[i] = 1.5f * i;
            s.unchangedRuns[i] = (i % 4) - 1; // -1: no value yet
        }
        return s;
    }

    /** {@link #inEpisodeWithProfile()} with a learned level of forecast residual (format 3). */
    static DeviceState inEpisodeWithDynamicsLevel() {
        DeviceState s = inEpisodeWithProfile();
        s.dynamicsSteps = 1_000;
        s.dynamicsMeanSquare = 0.5625f;
        return s;
    }

    /**
     * {@link #inEpisodeWithDynamicsLevel()} watched for silence: seen 1.234 s after its last step's
     * {@code ts} (Kafka's clock against the device's), its timer 10 minutes later (format 4).
     */
    static DeviceState inEpisodeWatchedForSilence() {
        DeviceState s = inEpisodeWithDynamicsLevel();
        s.lastSeenMs = s.lastTs + 1_234;
        s.silenceTimerMs = s.lastSeenMs + 600_000;
        return s;
    }

    /**
     * {@link #inEpisodeWatchedForSilence()} holding a shadow model's state (format 5): another
     * version's, with its own memory and no episode, and the same silence watch.
     */
    static DeviceState withShadow() {
        DeviceState s = inEpisodeWatchedForSilence();
        DeviceState shadow = inEpisodeWatchedForSilence();
        shadow.modelVersion = "fleet-gru-candidate";
        for (int i = 0; i < shadow.hidden.length; i++) {
            shadow.hidden[i] = -0.5f * shadow.hidden[i];
        }
        shadow.episodeOpen = false;
        shadow.aboveRun = 0;
        shadow.belowRun = 0;
        shadow.episodeStart = 0;
        shadow.episodePeak = 0f;
        shadow.episodeSteps = 0;
        shadow.episodeShares = new float[shadow.forecast.length];
        shadow.episodeReasons = 0;
        s.shadow = shadow;
        return s;
    }

    /**
     * {@link #withShadow()} while the serving model's level of forecast residual is still learned
     * in blocks (format 6): 450 steps in, the current block's mean square, and the completed
     * blocks' sum, largest and second largest.
     */
    static DeviceState learningInBlocks() {
        DeviceState s = withShadow();
        s.dynamicsSteps = 450;
        s.dynamicsMeanSquare = 0.75f;
        s.dynamicsBlocks = new float[] {2.5f, 1.25f, 0.5f};
        return s;
    }

    /**
     * {@link #learningInBlocks()} with the serving model's variability profile learned for its 16
     * targets (format 7): its steps, and per target the moving average of the squared change, the
     * log's mean and variance, and the last value; and away from its profile for the last 90
     * minutes ({@code profileAboveSince}).
     */
    static DeviceState withVariability() {
        DeviceState s = learningInBlocks();
        s.resetVariability(16);
        s.variabilitySteps = 1_000;
        s.profileAboveSince = s.lastTs - 5_400_000L;
        for (int i = 0; i < 16; i++) {
            s.variabilityMeanSquare[i] = 0.0625f * (i + 1);
            s.variabilityMean[i] = -4.5f + 0.25f * i;
            s.variabilityVar[i] = 0.75f + 0.125f * i;
            s.variabilityLast[i] = 1.5f - 0.5f * i;
        }
        return s;
    }

    private static byte[] write(DeviceState s) throws IOException {
        DataOutputSerializer out = new DataOutputSerializer(512);
        SERIALIZER.serialize(s, out);
        return out.getCopyOfBuffer();
    }

    private static DeviceState read(byte[] bytes) throws IOException {
        return SERIALIZER.deserialize(new DataInputDeserializer(bytes));
    }

    @Test
    void shouldRoundTripADeviceInAnEpisode() throws Exception {
        for (DeviceState s :
                new DeviceState[] {
                    inEpisode(),
                    inEpisodeWithProfile(),
                    inEpisodeWithDynamicsLevel(),
                    inEpisodeWatchedForSilence(),
                    withShadow(),
                    withVariability(),
                    DeviceState.entry(null, inEpisodeWatchedForSilence())
                }) {
            assertThat(read(write(s))).usingRecursiveComparison().isEqualTo(s);
            assertThat(SERIALIZER.copy(s)).usingRecursiveComparison().isEqualTo(s);
        }
    }

    @Test
    void shouldNeitherStoreNorCopyThatAStateWasFoundToFit() throws Exception {
        DeviceState s = withShadow();
        s.fitted = true;
        s.shadow.fitted = true;
        DeviceState read = read(write(s));
        DeviceState copy = SERIALIZER.copy(s);
        for (DeviceState other : new DeviceState[] {read, copy}) {
            // A restored or copied state is checked against the model again before it is stepped.
            assertThat(other.fitted).isFalse();
            assertThat(other.shadow.fitted).isFalse();
            assertThat(other)
                    .usingRecursiveComparison()
                    .ignoringFields("fitted", "shadow.fitted")
                    .isEqualTo(s);
        }
    }

    @Test
    void shouldRoundTripAFreshDeviceWithoutSequenceNumbers() throws Exception {
        DeviceState s = DeviceState.fresh("m", 8, 3);
        assertThat(read(write(s))).usingRecursiveComparison().isEqualTo(s);
        s.lastSeq = -5; // any value other than NO_SEQ is kept, negative ones too
        assertThat(read(write(s)).lastSeq).isEqualTo(-5);
    }

    @Test
    void shouldRoundTripAnEmptyInstance() throws Exception {
        DeviceState s = SERIALIZER.createInstance();
        assertThat(read(write(s))).usingRecursiveComparison().isEqualTo(s);
    }

    @Test
    void shouldDropOnlyStaleEpisodeFieldsOutsideARun() throws Exception {
        DeviceState s = inEpisode();
        s.episodeOpen = false; // closed, and no run building: the episode fields are stale
        s.aboveRun = 0;
        s.belowRun = 0;
        DeviceState back = read(write(s));
        assertThat(back)
                .usingRecursiveComparison()
                .ignoringFields("episodeStart", "episodePeak", "episodeSteps", "episodeShares")
                .isEqualTo(s);
        assertThat(back.episodeShares).hasSize(16).containsOnly(0f);
        assertThat(back.episodeSteps).isZero();
    }

    @Test
    void shouldShareOneModelVersionStringAcrossDevices() throws Exception {
        DeviceStateSerializer serializer = DeviceStateSchema.serializer();
        byte[] bytes = write(inEpisode());
        DeviceState a = serializer.deserialize(new DataInputDeserializer(bytes));
        DeviceState b = serializer.deserialize(new DataInputDeserializer(bytes));
        assertThat(b.modelVersion).isSameAs(a.modelVersion);
    }

    /**
     * The serializer keeps the encoding of the last model version it wrote: one serializer writing
     * devices of other versions in turn (and none) writes what a fresh one writes for each.
     */
    @Test
    void shouldWriteEachModelVersionAsAFreshSerializerDoes() throws Exception {
        DeviceStateSerializer reused = DeviceStateSchema.serializer();
        for (String version : new String[] {"v1", "v2-\u00e9t\u00e9", null, "v1", "v1", "v2"}) {
            DeviceState s = inEpisode();
            s.modelVersion = version;
            DataOutputSerializer out = new DataOutputSerializer(512);
            reused.serialize(s, out);
            DataOutputSerializer fresh = new DataOutputSerializer(512);
            DeviceStateSchema.serializer().serialize(s, fresh);
            assertThat(out.getCopyOfBuffer()).as(version).isEqualTo(fresh.getCopyOfBuffer());
            assertThat(read(out.getCopyOfBuffer()).modelVersion).isEqualTo(version);
        }
    }

    private static byte[] released(int format) throws IOException {
        Path golden = Path.of("src/test/resources/formats/format-" + format + ".hex");
        return HexFormat.of().parseHex(Files.readString(golden).replaceAll("\\s", ""));
    }

    /**
     * Format 1 as released: the committed bytes must always read back to the same device, with no
     * profile yet (it is learned after the restore).
     */
    @Test
    void shouldReadTheReleasedFormat1Bytes() throws Exception {
        DeviceState back = read(released(1));
        DeviceState expected = inEpisode();
        expected.episodeReasons = 1; // format 1's open episode was the forecast residual's
        assertThat(back).usingRecursiveComparison().isEqualTo(expected);
        assertThat(back.profileSteps).isZero();
        assertThat(back.profileMean).isNull();
    }

    /** Each format from 2 on as released, with the device its committed bytes hold. */
    static Stream<Arguments> releasedFormats() {
        return Stream.of(
                Arguments.of(2, inEpisodeWithProfile()),
                Arguments.of(3, inEpisodeWithDynamicsLevel()),
                Arguments.of(4, inEpisodeWatchedForSilence()),
                Arguments.of(5, withShadow()),
                Arguments.of(6, learningInBlocks()),
                Arguments.of(7, withVariability()));
    }

    /**
     * A format as released: the committed bytes must always read back to the same device, and while
     * the format is current, the writer must produce exactly them.
     */
    @ParameterizedTest(name = "format {0}")
    @MethodSource("releasedFormats")
    void shouldReadTheReleasedBytes(int format, DeviceState device) throws Exception {
        assertThat(read(released(format))).usingRecursiveComparison().isEqualTo(device);
        if (DeviceStateSerializer.CURRENT_FORMAT == format) {
            assertThat(write(device)).isEqualTo(released(format));
        }
    }

    /**
     * A state of format 4 or older holds no shadow's state (the job kept it under a name of its
     * own) and is not a holder.
     */
    @Test
    void shouldReadFormat4WithNoShadowInside() throws Exception {
        DeviceState back = read(released(4));
        assertThat(back.shadow).isNull();
        assertThat(back.vacant).isFalse();
    }

    /** A shadow's state holds no other: the writer refuses the bytes no reader would expect. */
    @Test
    void shouldRefuseAShadowInsideAShadow() {
        DeviceState nested = withShadow();
        nested.shadow.shadow = inEpisode();
        assertThatThrownBy(() -> write(nested))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("a shadow's state holds another");
    }

    /** A device restored from format 3 has no silence watch yet: it starts at its next step. */
    @Test
    void shouldReadFormat3WithNoSilenceWatch() throws Exception {
        DeviceState back = read(released(3));
        assertThat(back.lastSeenMs).isEqualTo(DeviceState.NO_TIME);
        assertThat(back.silenceTimerMs).isEqualTo(DeviceState.NO_TIME);
        assertThat(back.silent).isFalse();
    }

    /** A reported silence, and a timer without a time seen (never written), round-trip as meant. */
    @Test
    void shouldRoundTripASilentDeviceAndDropATimerWithoutATimeSeen() throws Exception {
        DeviceState silent = inEpisodeWatchedForSilence();
        silent.silent = true;
        silent.silenceTimerMs = DeviceState.NO_TIME;
        assertThat(read(write(silent))).usingRecursiveComparison().isEqualTo(silent);

        DeviceState odd = inEpisodeWithDynamicsLevel();
        odd.silenceTimerMs = 5;
        assertThat(read(write(odd)).silenceTimerMs).isEqualTo(DeviceState.NO_TIME);
    }

    /** A level restored from format 5 or older was a plain mean: no blocks, whatever its steps. */
    @Test
    void shouldReadALevelBeforeFormat6WithoutBlocks() throws Exception {
        DeviceState back = read(released(5));
        assertThat(back.dynamicsSteps).isEqualTo(1_000);
        assertThat(back.dynamicsBlocks).isNull();
        DeviceState learning = read(write(learningInBlocks()));
        assertThat(learning.dynamicsBlocks).containsExactly(2.5f, 1.25f, 0.5f);
        assertThat(learning.shadow.dynamicsBlocks).isNull();
    }

    /** A profile restored from format 2 is kept; the level of forecast residual is learned next. */
    @Test
    void shouldReadFormat2WithNoLevelOfForecastResidual() throws Exception {
        DeviceState back = read(released(2));
        assertThat(back.profileSteps).isEqualTo(1_000);
        assertThat(back.dynamicsSteps).isZero();
        assertThat(back.dynamicsMeanSquare).isZero();
    }

    /**
     * The sizes the README gives at hidden size 64 and 16 features, every one a target with a
     * learned profile and runs, outside an episode with the fleet's normalisation and with the
     * device's, and inside one (the budget was 600 bytes outside an episode: over it by the
     * stuck score's 82 bytes, and by the device's spread's 64).
     */
    @Test
    void shouldTakeTheDocumentedBytesAtHidden64And16Features() throws Exception {
        DeviceState quiet = inEpisodeWithProfile();
        quiet.episodeOpen = false;
        quiet.aboveRun = 0;
        assertThat(write(quiet)).hasSize(733);
        quiet.valueVar = null;
        assertThat(write(quiet)).hasSize(669);
        assertThat(write(inEpisodeWithProfile())).hasSize(811);
        // A learned level of forecast residual (per-device scale): its steps and mean square.
        quiet.dynamicsSteps = 1_000;
        quiet.dynamicsMeanSquare = 0.5f;
        assertThat(write(quiet)).hasSize(674);
        assertThat(write(inEpisodeWithDynamicsLevel())).hasSize(816);
        // Watched for silence: the time last seen and the timer, 5 bytes more.
        quiet.lastSeenMs = quiet.lastTs + 1_234;
        quiet.silenceTimerMs = quiet.lastSeenMs + 600_000;
        assertThat(write(quiet)).hasSize(679);
        assertThat(write(inEpisodeWatchedForSilence())).hasSize(821);
        // While the level is learned in blocks (format 6): three floats more, until it is.
        DeviceState learning = SERIALIZER.copy(quiet);
        learning.dynamicsSteps = 450;
        learning.dynamicsBlocks = new float[3];
        assertThat(write(learning)).hasSize(679 + 12);
        // With a shadow model's state inside (format 5): the two states, one entry.
        DeviceState pair = SERIALIZER.copy(quiet);
        pair.shadow = SERIALIZER.copy(quiet);
        assertThat(write(pair)).hasSize(2 * 679);
        // The variability score (format 7): its steps, then four floats per target (and a length
        // byte per array); without it, the one 0 byte counted above.
        DeviceState variable = SERIALIZER.copy(quiet);
        variable.resetVariability(16);
        variable.variabilitySteps = 1_000;
        assertThat(write(variable)).hasSize(679 - 1 + 2 + 4 * (1 + 16 * 4));
        // Away from its profile for the last day (format 7; 0, one byte, counted above when not).
        variable.profileAboveSince = variable.lastTs - 86_400_000L;
        assertThat(write(variable)).hasSize(679 - 1 + 2 + 4 * (1 + 16 * 4) - 1 + 4);
    }

    @Test
    void shouldZeroStaleEpisodeFieldsEvenInAReusedInstance() throws Exception {
        DeviceState quiet = inEpisode();
        quiet.episodeOpen = false;
        quiet.aboveRun = 0;
        byte[] bytes = write(quiet);
        DataInputDeserializer in = new DataInputDeserializer(bytes);
        in.readUnsignedByte(); // the format version
        DeviceState reused = SERIALIZER.readFormat1(in, inEpisode());
        assertThat(reused.episodeStart).isZero();
        assertThat(reused.episodePeak).isZero();
        assertThat(reused.episodeSteps).isZero();
        assertThat(reused.episodeShares).containsOnly(0f);
    }

    @Test
    void shouldRefuseCorruptLengthsWithAnIoException() {
        // format 1, then a model version "length" of 2^35
        byte[] corrupt = {1, (byte) 0x80, (byte) 0x80, (byte) 0x80, (byte) 0x80, 0x01};
        assertThatThrownBy(() -> read(corrupt))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("malformed device state");
    }

    @Test
    void shouldRefuseAFormatFromTheFuture() {
        byte[] future = {(byte) (DeviceStateSerializer.CURRENT_FORMAT + 1), 0};
        assertThatThrownBy(() -> read(future))
                .isInstanceOf(IOException.class)
                .hasMessageContaining("written by a newer Vigil");
    }

    @Test
    void shouldResolveCompatibilityByFormat() throws Exception {
        TypeSerializerSnapshot<DeviceState> current = SERIALIZER.snapshotConfiguration();
        assertThat(current.resolveSchemaCompatibility(current).isCompatibleAsIs()).isTrue();
        assertThat(current.resolveSchemaCompatibility(snapshotOfFormat(1)).isCompatibleAsIs())
                .isTrue();
        assertThat(
                        current.resolveSchemaCompatibility(
                                        snapshotOfFormat(DeviceStateSerializer.CURRENT_FORMAT + 1))
                                .isIncompatible())
                .isTrue();
        assertThat(
                        current.resolveSchemaCompatibility(new PojoSerializerSnapshot<>())
                                .isCompatibleAfterMigration())
                .isTrue();
    }

    /** A snapshot as Flink reads it back from a savepoint written with {@code format}. */
    private static TypeSerializerSnapshot<DeviceState> snapshotOfFormat(int format)
            throws IOException {
        DataOutputSerializer out = new DataOutputSerializer(16);
        out.writeInt(format);
        DeviceStateSerializerSnapshot s = new DeviceStateSerializerSnapshot();
        s.readSnapshot(
                s.getCurrentVersion(),
                new DataInputDeserializer(out.getCopyOfBuffer()),
                DeviceStateSchemaTest.class.getClassLoader());
        return s;
    }
}
