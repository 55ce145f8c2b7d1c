// The Presence Android app: the platform-free shell (src/main/kotlin/dev/presence/shell), the
// OS glue (src/main/kotlin/dev/presence/app), the generated bindings and the Rust library,
// built for each ABI with cargo-ndk. See ../README.md.
import java.io.File

plugins {
    id("com.android.application")
    id("org.jetbrains.kotlin.android")
    // Needs app/google-services.json from your Firebase project (not in the repository).
    id("com.google.gms.google-services")
}

val repoRoot: File = rootProject.projectDir.parentFile
val abis = listOf("arm64-v8a", "armeabi-v7a", "x86_64")
val jniLibs = layout.buildDirectory.dir("rust/jniLibs")
val generated = layout.buildDirectory.dir("generated/presence/kotlin")

android {
    namespace = "dev.presence.app"
    compileSdk = 36

    defaultConfig {
        applicationId = "dev.presence.app"
        minSdk = 26
        targetSdk = 36
        versionCode = 1
        versionName = "0.1.0"
        ndk { abiFilters += abis }
    }

    buildTypes {
        release {
            isMinifyEnabled = true
            proguardFiles(getDefaultProguardFile("proguard-android-optimize.txt"), "proguard-rules.pro")
        }
    }

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }

    sourceSets["main"].jniLibs.srcDir(jniLibs)
    sourceSets["main"].kotlin.srcDirs(generated, repoRoot.resolve("bindings/kotlin"))
}

dependencies {
    implementation("net.java.dev.jna:jna:5.15.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
    implementation("com.google.firebase:firebase-messaging:24.1.0")
    implementation("org.unifiedpush.android:connector:3.0.7")
    testImplementation("junit:junit:4.13.2")
}

// libpresence_ffi.so for each ABI: `cargo ndk` (cargo install cargo-ndk; rustup target add
// aarch64-linux-android armv7-linux-androideabi x86_64-linux-android; ANDROID_NDK_HOME set).
val cargoNdk by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine(
        listOf("cargo", "ndk", "--platform", "26", "-o", jniLibs.get().asFile.path) +
            abis.flatMap { listOf("-t", it) } +
            listOf("build", "-p", "presence-ffi", "--profile", "release-small"),
    )
}

// The Kotlin bindings, generated from an unstripped host build (uniffi reads its metadata).
val uniffiBindings by tasks.registering(Exec::class) {
    workingDir = repoRoot
    commandLine("cargo", "xtask", "bindings")
    doLast {
        copy {
            from(repoRoot.resolve("target/bindings/kotlin"))
            into(generated)
        }
    }
}

tasks.named("preBuild") { dependsOn(cargoNdk, uniffiBindings) }
